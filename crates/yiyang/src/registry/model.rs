//! Pure rules of the registry: the import template's columns, the code lists, and turning one raw
//! row into a validated elder (or a Chinese reason). No I/O here.

use chrono::NaiveDate;
use yiyang_kernel::{CitizenId, Sex};

/// One column of the import template: Chinese header, English header, required?
pub struct Column {
    pub key: &'static str,
    pub zh: &'static str,
    pub required: bool,
    pub hint: &'static str,
}

pub const COLUMNS: &[Column] = &[
    Column {
        key: "citizen_id",
        zh: "身份证号",
        required: true,
        hint: "18位公民身份号码（15位旧号自动升级）",
    },
    Column {
        key: "name",
        zh: "姓名",
        required: true,
        hint: "",
    },
    Column {
        key: "sex",
        zh: "性别",
        required: false,
        hint: "男/女，可空（由身份证号推出）",
    },
    Column {
        key: "birth_date",
        zh: "出生日期",
        required: false,
        hint: "YYYY-MM-DD，可空（由身份证号推出）",
    },
    Column {
        key: "hukou_region",
        zh: "户籍地区划代码",
        required: false,
        hint: "12位统计用区划代码",
    },
    Column {
        key: "residence_region",
        zh: "居住地区划代码",
        required: true,
        hint: "12位统计用区划代码（村/社区）",
    },
    Column {
        key: "address",
        zh: "居住地址",
        required: false,
        hint: "",
    },
    Column {
        key: "phone",
        zh: "联系电话",
        required: false,
        hint: "手机或固话",
    },
    Column {
        key: "lon",
        zh: "经度",
        required: false,
        hint: "WGS84，如 120.57",
    },
    Column {
        key: "lat",
        zh: "纬度",
        required: false,
        hint: "WGS84，如 32.39",
    },
    Column {
        key: "living_status",
        zh: "居住状况",
        required: false,
        hint: "独居/空巢/留守/与子女同住",
    },
    Column {
        key: "economic_status",
        zh: "经济状况",
        required: false,
        hint: "特困/低保/低保边缘/一般",
    },
    Column {
        key: "family_planning_special",
        zh: "计划生育特殊家庭",
        required: false,
        hint: "无/失独/伤残",
    },
    Column {
        key: "disability_grade",
        zh: "残疾等级",
        required: false,
        hint: "1–4，可空",
    },
    Column {
        key: "entitled_veteran_family",
        zh: "优抚对象",
        required: false,
        hint: "是/否",
    },
    Column {
        key: "death_date",
        zh: "死亡日期",
        required: false,
        hint: "YYYY-MM-DD，可空",
    },
];

/// (code, 中文) pairs; the database and API keep the code, screens and files show the Chinese.
pub use yiyang_kernel::codes::{ECONOMIC_STATUS, ELDER_STATUS, FAMILY_PLANNING, LIVING_STATUS};

pub fn code_of(list: &[(&'static str, &'static str)], v: &str) -> Option<&'static str> {
    let v = v.trim();
    list.iter()
        .find(|(c, z)| *c == v || *z == v)
        .map(|(c, _)| *c)
}

pub fn label_of(list: &[(&str, &str)], code: &str) -> String {
    list.iter()
        .find(|(c, _)| *c == code)
        .map(|(_, z)| z.to_string())
        .unwrap_or_else(|| code.to_string())
}

/// Map a header cell to a column key, accepting Chinese or English, ignoring case, spaces and `*`.
pub fn header_key(h: &str) -> Option<&'static str> {
    let h = h
        .trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('*')
        .trim();
    let hl = h.to_ascii_lowercase();
    COLUMNS
        .iter()
        .find(|c| c.zh == h || c.key == hl)
        .map(|c| c.key)
}

/// A validated elder as the import and the editor produce it; region codes already checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ElderInput {
    pub citizen_id: CitizenId,
    pub name: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub hukou_region: Option<String>,
    pub residence_region: String,
    pub address: Option<String>,
    pub phone: Option<String>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub living_status: Option<&'static str>,
    pub economic_status: Option<&'static str>,
    pub family_planning_special: Option<&'static str>,
    pub disability_grade: Option<i64>,
    pub entitled_veteran_family: Option<bool>,
    pub death_date: Option<NaiveDate>,
}

impl ElderInput {
    /// A stable digest of the content, so re-importing an unchanged row is recognised as unchanged.
    pub fn digest(&self) -> String {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        let mut part = |v: Option<&str>| {
            // Tag + length framing: None, "" and neighbouring fields can never be confused.
            match v {
                None => h.update([0u8]),
                Some(v) => {
                    h.update([1u8]);
                    h.update((v.len() as u32).to_be_bytes());
                    h.update(v.as_bytes());
                }
            }
        };
        part(Some(self.citizen_id.as_str()));
        part(Some(&self.name));
        part(Some(self.sex.zh()));
        part(Some(&iso_date(self.birth_date)));
        part(self.hukou_region.as_deref());
        part(Some(&self.residence_region));
        part(self.address.as_deref());
        part(self.phone.as_deref());
        let mut num = itoa::Buffer::new();
        part(self.lon.map(|v| num.format(v.to_bits())));
        let mut num = itoa::Buffer::new();
        part(self.lat.map(|v| num.format(v.to_bits())));
        part(self.living_status);
        part(self.economic_status);
        part(self.family_planning_special);
        let mut num = itoa::Buffer::new();
        part(self.disability_grade.map(|v| num.format(v)));
        part(
            self.entitled_veteran_family
                .map(|v| if v { "1" } else { "0" }),
        );
        part(self.death_date.map(iso_date).as_deref());
        hex::encode(&h.finalize()[..16])
    }

    pub fn status(&self) -> &'static str {
        if self.death_date.is_some() {
            "deceased"
        } else {
            "active"
        }
    }
}

/// `YYYY-MM-DD`, as `NaiveDate`'s `to_string` writes it, without the formatting machinery (an
/// import writes two per row; chrono's took 4% of the validator). Years outside 1000–9999 go the
/// general way.
pub fn iso_date(d: NaiveDate) -> String {
    use chrono::Datelike;
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(1000..=9999).contains(&y) {
        return d.to_string();
    }
    let digit = |v: u32| char::from(b'0' + v as u8);
    let y = y as u32;
    let mut s = String::with_capacity(10);
    for c in [
        digit(y / 1000),
        digit(y / 100 % 10),
        digit(y / 10 % 10),
        digit(y % 10),
        '-',
        digit(m / 10),
        digit(m % 10),
        '-',
        digit(day / 10),
        digit(day % 10),
    ] {
        s.push(c);
    }
    s
}

/// Dates as people type them: 2024-03-05, 2024/3/5, 20240305, 2024.3.5, or an Excel serial number.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // The two exact forms first, read digit by digit (chrono's format parser was a visible share
    // of a million-row import).
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() == 8 {
        if let (Some(y), Some(m), Some(d)) = (num(0..4), num(4..6), num(6..8)) {
            return NaiveDate::from_ymd_opt(y as i32, m, d);
        }
    } else if b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10))
    {
        return NaiveDate::from_ymd_opt(y as i32, m, d);
    }
    let norm: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '.' || c == '年' || c == '月' {
                '-'
            } else {
                c
            }
        })
        .collect();
    let norm = norm.trim_end_matches('日').trim_end_matches('-');
    let date_part = norm.split([' ', 'T']).next().unwrap_or("");
    if let Ok(d) = NaiveDate::parse_from_str(date_part, "%Y-%m-%d") {
        return Some(d);
    }
    // Excel serial date (days since 1899-12-30), as some files carry dates as numbers.
    if let Ok(n) = s.parse::<f64>()
        && (1.0..80000.0).contains(&n)
    {
        return NaiveDate::from_ymd_opt(1899, 12, 30)
            .map(|d| d + chrono::Duration::days(n.trunc() as i64));
    }
    None
}

fn opt(v: &str) -> Option<&str> {
    let t = v.trim();
    if t.is_empty() { None } else { Some(t) }
}

/// Normalise a phone: digits and at most one leading +86 / dash; mobiles 11 digits, landlines 7–12.
pub fn parse_phone(v: &str) -> Result<String, String> {
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let digits = digits
        .strip_prefix("86")
        .filter(|d| d.len() == 11 && v.trim_start().starts_with('+'))
        .map(str::to_string)
        .unwrap_or(digits);
    if v.chars()
        .any(|c| !(c.is_ascii_digit() || " -+()".contains(c)))
    {
        return Err(format!("联系电话“{}”含有非法字符", v.trim()));
    }
    let mobile = digits.len() == 11 && digits.starts_with('1');
    let landline = (7..=12).contains(&digits.len()) && !digits.starts_with('1');
    if !(mobile || landline) {
        return Err("联系电话应为11位手机号或7–12位固定电话".into());
    }
    Ok(digits)
}

/// Characters of a free-text address.
pub const MAX_ADDRESS: usize = 200;

/// Characters that reorder the text around them when shown (right-to-left overrides and the
/// like): a name or address holding one reads differently from what is stored.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Validate one raw row (values by column key). `region_ok` checks and maps a region code.
pub fn validate_row<'a>(
    get: &dyn Fn(&str) -> &'a str,
    today: NaiveDate,
    region_ok: &dyn Fn(&str) -> Result<String, String>,
) -> Result<ElderInput, String> {
    let mut errs: Vec<String> = vec![];
    let cid_raw = get("citizen_id");
    let citizen_id = match CitizenId::parse(cid_raw, today) {
        Ok(c) => Some(c),
        Err(e) => {
            errs.push(e.to_string());
            None
        }
    };
    let name = get("name").trim().to_string();
    if name.is_empty() {
        errs.push("姓名不能为空".into());
    } else if name.chars().count() > 50 {
        errs.push("姓名过长（最多50个字）".into());
    } else if name.chars().any(|c| c.is_control() || is_bidi_control(c)) {
        errs.push("姓名含有看不见的控制字符，请重新输入".into());
    } else if let Some(c) = name.chars().find(|c| {
        !(c.is_alphabetic() || c.is_ascii_digit() || matches!(c, '·' | '•' | '.' | ' ' | '-'))
    }) {
        errs.push(format!(
            "姓名不能含有符号“{c}”：只能是汉字、字母，以及少数民族姓名中的间隔号（·）"
        ));
    } else if name.chars().any(|c| c.is_ascii_digit()) {
        errs.push("姓名不能含有数字".into());
    }
    let mut sex = None;
    let mut birth = None;
    if let Some(c) = &citizen_id {
        sex = Some(c.sex());
        birth = Some(c.birth_date());
        if let Some(s) = opt(get("sex")) {
            match Sex::parse_zh(s) {
                Some(x) if x != c.sex() => errs.push("性别与身份证号不符".into()),
                None => errs.push(format!("性别“{s}”无法识别，应为男或女")),
                _ => {}
            }
        }
        if let Some(b) = opt(get("birth_date")) {
            match parse_date(b) {
                Some(d) if d != c.birth_date() => errs.push("出生日期与身份证号不符".into()),
                None => errs.push(format!("出生日期“{b}”无法识别")),
                _ => {}
            }
        }
    }
    let residence = match opt(get("residence_region")) {
        None => {
            errs.push("居住地区划代码不能为空".into());
            None
        }
        Some(r) => match region_ok(r) {
            // Where someone lives is a village or community: counts, visits and services are
            // planned per village, and every rollup sums villages up to the county.
            Ok(c)
                if yiyang_kernel::RegionCode::parse(&c).is_ok_and(|rc| {
                    rc.level() != yiyang_kernel::region_code::RegionLevel::Village
                }) =>
            {
                errs.push(format!(
                    "居住地区划代码 {r} 是乡镇（街道）或更高一级的代码，请填写到村（社区）一级"
                ));
                None
            }
            Ok(c) => Some(c),
            Err(e) => {
                errs.push(format!("居住地{e}"));
                None
            }
        },
    };
    let hukou = match opt(get("hukou_region")) {
        None => None,
        Some(r) => match yiyang_kernel::RegionCode::parse(r) {
            Ok(c) => Some(c.to_string()),
            Err(e) => {
                errs.push(format!("户籍地{e}"));
                None
            }
        },
    };
    let phone = match opt(get("phone")) {
        None => None,
        Some(p) => match parse_phone(p) {
            Ok(p) => Some(p),
            Err(e) => {
                errs.push(e);
                None
            }
        },
    };
    let coord = |key: &str, lo: f64, hi: f64, label: &str, errs: &mut Vec<String>| -> Option<f64> {
        let v = get(key);
        let v = opt(v)?;
        match v.parse::<f64>() {
            Ok(x) if (lo..=hi).contains(&x) => Some(x),
            _ => {
                errs.push(format!("{label}“{v}”无效（应在 {lo}–{hi} 之间）"));
                None
            }
        }
    };
    let lon = coord("lon", 73.0, 136.0, "经度", &mut errs);
    let lat = coord("lat", 3.0, 54.0, "纬度", &mut errs);
    let mut pick =
        |key: &str, list: &[(&'static str, &'static str)], label: &str| -> Option<&'static str> {
            let v = get(key);
            let v = opt(v)?;
            match code_of(list, v) {
                Some(c) => Some(c),
                None => {
                    let allowed: Vec<&str> = list.iter().map(|(_, z)| *z).collect();
                    errs.push(format!("{label}“{v}”无效，应为 {}", allowed.join("/")));
                    None
                }
            }
        };
    let living_status = pick("living_status", LIVING_STATUS, "居住状况");
    let economic_status = pick("economic_status", ECONOMIC_STATUS, "经济状况");
    let family_planning_special = pick(
        "family_planning_special",
        FAMILY_PLANNING,
        "计划生育特殊家庭",
    );
    let disability_grade = match opt(get("disability_grade")) {
        None => None,
        Some(v) => {
            let v2 = v.trim_end_matches("级").trim_start_matches('一');
            let n = match v2 {
                "1" | "一" => Some(1),
                "2" | "二" => Some(2),
                "3" | "三" => Some(3),
                "4" | "四" => Some(4),
                _ => v
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.fract() == 0.0 && (1.0..=4.0).contains(x))
                    .map(|x| x as i64),
            };
            if n.is_none() {
                errs.push(format!("残疾等级“{v}”无效，应为1–4或留空"));
            }
            n
        }
    };
    let entitled_veteran_family = match opt(get("entitled_veteran_family")) {
        None => None,
        Some("是" | "Y" | "y" | "yes" | "1" | "true") => Some(true),
        Some("否" | "N" | "n" | "no" | "0" | "false") => Some(false),
        Some(v) => {
            errs.push(format!("优抚对象“{v}”无效，应为是或否"));
            None
        }
    };
    let death_date = match opt(get("death_date")) {
        None => None,
        Some(v) => match parse_date(v) {
            None => {
                errs.push(format!("死亡日期“{v}”无法识别"));
                None
            }
            Some(d) if d > today => {
                errs.push("死亡日期晚于今天".into());
                None
            }
            Some(d) if birth.is_some_and(|b| d < b) => {
                errs.push("死亡日期早于出生日期".into());
                None
            }
            Some(d) => Some(d),
        },
    };
    let address = opt(get("address")).map(str::to_string);
    if let Some(a) = &address {
        if a.chars().count() > MAX_ADDRESS {
            errs.push(format!("居住地址过长（最多 {MAX_ADDRESS} 个字）"));
        } else if a.chars().any(|c| c.is_control() || is_bidi_control(c)) {
            errs.push("居住地址含有看不见的控制字符，请重新输入".into());
        }
    }
    if !errs.is_empty() {
        return Err(errs.join("；"));
    }
    Ok(ElderInput {
        citizen_id: citizen_id.expect("checked"),
        name,
        sex: sex.expect("checked"),
        birth_date: birth.expect("checked"),
        hukou_region: hukou,
        residence_region: residence.expect("checked"),
        address,
        phone,
        lon,
        lat,
        living_status,
        economic_status,
        family_planning_special,
        disability_grade,
        entitled_veteran_family,
        death_date,
    })
}

/// The fields in which `new` differs from `old`, as the template names them, each value as a
/// person reads it (labels, region names, 是/否); the phone masked.
pub fn field_changes(
    old: &ElderInput,
    new: &ElderInput,
    region_name: &dyn Fn(&str) -> String,
) -> Vec<crate::registry::import::FieldChange> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let lab =
        |list: &[(&str, &str)], v: Option<&str>| v.map(|c| label_of(list, c)).unwrap_or_default();
    let region = |v: Option<&str>| v.map(region_name).unwrap_or_default();
    let num = |v: Option<f64>| v.map(|x| format!("{x:.6}")).unwrap_or_default();
    let phone = |v: &Option<String>| {
        v.as_deref()
            .map(yiyang_kernel::mask::phone)
            .unwrap_or_default()
    };
    let pairs: Vec<(&str, String, String)> = vec![
        ("姓名", old.name.clone(), new.name.clone()),
        ("性别", old.sex.zh().into(), new.sex.zh().into()),
        (
            "户籍地区划",
            region(old.hukou_region.as_deref()),
            region(new.hukou_region.as_deref()),
        ),
        (
            "居住地",
            region(Some(&old.residence_region)),
            region(Some(&new.residence_region)),
        ),
        ("居住地址", opt(&old.address), opt(&new.address)),
        ("联系电话", phone(&old.phone), phone(&new.phone)),
        ("经度", num(old.lon), num(new.lon)),
        ("纬度", num(old.lat), num(new.lat)),
        (
            "居住状况",
            lab(LIVING_STATUS, old.living_status),
            lab(LIVING_STATUS, new.living_status),
        ),
        (
            "经济状况",
            lab(ECONOMIC_STATUS, old.economic_status),
            lab(ECONOMIC_STATUS, new.economic_status),
        ),
        (
            "计划生育特殊家庭",
            lab(FAMILY_PLANNING, old.family_planning_special),
            lab(FAMILY_PLANNING, new.family_planning_special),
        ),
        (
            "残疾等级",
            old.disability_grade
                .map(|g| format!("{g} 级"))
                .unwrap_or_default(),
            new.disability_grade
                .map(|g| format!("{g} 级"))
                .unwrap_or_default(),
        ),
        (
            "优抚对象",
            old.entitled_veteran_family
                .map(|b| if b { "是" } else { "否" }.to_string())
                .unwrap_or_default(),
            new.entitled_veteran_family
                .map(|b| if b { "是" } else { "否" }.to_string())
                .unwrap_or_default(),
        ),
        (
            "死亡日期",
            old.death_date.map(|d| d.to_string()).unwrap_or_default(),
            new.death_date.map(|d| d.to_string()).unwrap_or_default(),
        ),
    ];
    // Phones that differ only beyond their masked digits still differ: compare them in clear.
    pairs
        .into_iter()
        .filter(|(f, o, n)| o != n || (*f == "联系电话" && old.phone != new.phone))
        .map(|(f, o, n)| crate::registry::import::FieldChange {
            field: f.to_string(),
            old: if o.is_empty() { "（空）".into() } else { o },
            new: if n.is_empty() { "（空）".into() } else { n },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn iso_date_writes_what_chrono_writes() {
        // Every day from year 1 to 10100 (the fast path and both sides of it).
        let mut d = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let end = NaiveDate::from_ymd_opt(10100, 12, 31).unwrap();
        while d <= end {
            assert_eq!(iso_date(d), d.to_string());
            d = d.succ_opt().unwrap();
        }
    }

    fn run(m: &[(&str, &str)]) -> Result<ElderInput, String> {
        let map: HashMap<String, String> = m
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| map.get(k).map(String::as_str).unwrap_or("");
        let ok = |r: &str| {
            if r.starts_with("320682") {
                Ok(format!("{r:0<12}"))
            } else {
                Err("区划代码不在本县".to_string())
            }
        };
        validate_row(&get, today(), &ok)
    }

    #[test]
    fn good_row_and_codes() {
        let id = yiyang_kernel::citizen_id::compose(
            "320682",
            NaiveDate::from_ymd_opt(1940, 5, 6).unwrap(),
            123,
        );
        let e = run(&[
            ("citizen_id", &id),
            ("name", "王秀英"),
            ("residence_region", "320682101201"),
            ("living_status", "独居"),
            ("economic_status", "低保"),
            ("disability_grade", "2"),
            ("entitled_veteran_family", "否"),
            ("phone", "138-1234-5678"),
        ])
        .unwrap();
        assert_eq!(e.sex, Sex::Male);
        assert_eq!(e.living_status, Some("living_alone"));
        assert_eq!(e.economic_status, Some("minimum_living"));
        assert_eq!(e.phone.as_deref(), Some("13812345678"));
        assert_eq!(e.status(), "active");
        assert_eq!(e.digest(), e.clone().digest());
    }

    #[test]
    fn every_error_is_named() {
        let id = yiyang_kernel::citizen_id::compose(
            "320682",
            NaiveDate::from_ymd_opt(1940, 5, 6).unwrap(),
            123,
        );
        let err = run(&[
            ("citizen_id", &id),
            ("name", ""),
            ("sex", "女"),
            ("residence_region", "110101001001"),
            ("living_status", "合租"),
            ("death_date", "1930-01-01"),
        ])
        .unwrap_err();
        for needle in [
            "姓名不能为空",
            "性别与身份证号不符",
            "居住地区划代码不在本县",
            "居住状况“合租”无效",
            "死亡日期早于出生日期",
        ] {
            assert!(err.contains(needle), "{err} lacks {needle}");
        }
        assert!(
            run(&[("citizen_id", "123")])
                .unwrap_err()
                .contains("身份证号应为18位")
        );
    }

    #[test]
    fn dates_and_headers() {
        assert_eq!(parse_date("1940/5/6"), NaiveDate::from_ymd_opt(1940, 5, 6));
        assert_eq!(parse_date("19400506"), NaiveDate::from_ymd_opt(1940, 5, 6));
        assert_eq!(
            parse_date("1940年5月6日"),
            NaiveDate::from_ymd_opt(1940, 5, 6)
        );
        assert_eq!(parse_date("14737"), NaiveDate::from_ymd_opt(1940, 5, 6));
        // The exact forms read digit by digit: impossible dates and stray characters refused.
        assert_eq!(
            parse_date(" 1940-05-06 "),
            NaiveDate::from_ymd_opt(1940, 5, 6)
        );
        assert_eq!(parse_date("1940-02-30"), None);
        assert_eq!(parse_date("19401306"), None);
        assert_eq!(parse_date("1940-0a-06"), None);
        assert_eq!(parse_date("1940+05+06"), None);
        assert_eq!(header_key("\u{feff}身份证号"), Some("citizen_id"));
        assert_eq!(header_key(" Residence_Region "), Some("residence_region"));
        assert_eq!(header_key("*姓名"), Some("name"));
        assert_eq!(header_key("备注"), None);
    }
}

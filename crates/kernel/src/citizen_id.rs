//! 公民身份号码 (GB 11643-1999): parsing, legacy 15-digit upgrade, check character, derived sex and birth date.

use chrono::{Datelike, NaiveDate};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Sex {
    Male,
    Female,
}

impl Sex {
    pub fn zh(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
        }
    }
    pub fn parse_zh(s: &str) -> Option<Sex> {
        match s.trim() {
            "男" | "M" | "m" | "male" | "1" => Some(Sex::Male),
            "女" | "F" | "f" | "female" | "2" => Some(Sex::Female),
            _ => None,
        }
    }
}

/// A validated 18-character citizen ID. Always upper-case `X`. Never print it: use [`crate::mask`].
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CitizenId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    #[error("身份证号为空")]
    Empty,
    #[error("身份证号应为18位（或旧式15位），实际为{0}位")]
    Length(usize),
    #[error("身份证号含有非法字符")]
    Chars,
    #[error("身份证号中的出生日期无效")]
    BirthDate,
    #[error("身份证号中的出生日期晚于今天")]
    FutureBirth,
    #[error("身份证号校验位错误")]
    CheckChar,
}

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK: [u8; 11] = *b"10X98765432";

/// ISO 7064 MOD 11-2 check character over the first 17 digits.
pub fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| (d - b'0') as u32 * w)
        .sum();
    CHECK[(sum % 11) as usize]
}

impl CitizenId {
    /// Parse with `today` injected so the rule "birth date not in the future" is testable.
    pub fn parse(input: &str, today: NaiveDate) -> Result<CitizenId, CitizenIdError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(CitizenIdError::Empty);
        }
        let mut b: Vec<u8> = s.bytes().collect();
        if b.len() == 15 {
            if !b.iter().all(u8::is_ascii_digit) {
                return Err(CitizenIdError::Chars);
            }
            // Legacy IDs carry a 2-digit year of the 1900s; insert "19" and compute the check character.
            let mut v = Vec::with_capacity(18);
            v.extend_from_slice(&b[..6]);
            v.extend_from_slice(b"19");
            v.extend_from_slice(&b[6..15]);
            let c = check_char(&v);
            v.push(c);
            b = v;
        } else if b.len() != 18 {
            return Err(CitizenIdError::Length(s.chars().count()));
        } else {
            if !b[..17].iter().all(u8::is_ascii_digit) {
                return Err(CitizenIdError::Chars);
            }
            if b[17] == b'x' {
                b[17] = b'X';
            }
            if !(b[17].is_ascii_digit() || b[17] == b'X') {
                return Err(CitizenIdError::Chars);
            }
            if check_char(&b[..17]) != b[17] {
                return Err(CitizenIdError::CheckChar);
            }
        }
        let s = String::from_utf8(b).expect("ascii");
        let id = CitizenId(s);
        let birth = id.birth_date_opt().ok_or(CitizenIdError::BirthDate)?;
        if birth > today {
            return Err(CitizenIdError::FutureBirth);
        }
        if birth.year() < 1880 {
            return Err(CitizenIdError::BirthDate);
        }
        Ok(id)
    }

    fn birth_date_opt(&self) -> Option<NaiveDate> {
        let d = &self.0[6..14];
        let y: i32 = d[..4].parse().ok()?;
        let m: u32 = d[4..6].parse().ok()?;
        let day: u32 = d[6..8].parse().ok()?;
        NaiveDate::from_ymd_opt(y, m, day)
    }

    pub fn birth_date(&self) -> NaiveDate {
        self.birth_date_opt().expect("validated at parse")
    }

    /// Odd sequence digit = male.
    pub fn sex(&self) -> Sex {
        if (self.0.as_bytes()[16] - b'0') % 2 == 1 {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The 6-digit address code of issue (not necessarily where the person lives now).
    pub fn address_code(&self) -> &str {
        &self.0[..6]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `320682**********1234` style: first 6 and last 4 kept.
    pub fn masked(&self) -> String {
        crate::mask::citizen_id(&self.0)
    }
}

// Debug and Display print the masked form so an ID never leaks through a log line by accident.
impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({})", self.masked())
    }
}
impl fmt::Display for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Build a valid ID from its parts (used by the demo generator and tests).
pub fn compose(address6: &str, birth: NaiveDate, seq3: u32) -> String {
    let mut s = format!("{}{}{:03}", address6, birth.format("%Y%m%d"), seq3 % 1000);
    let c = check_char(s.as_bytes());
    s.push(c as char);
    s
}

/// Age in whole years on `on` (a person born on 29 Feb turns a year older on 1 Mar in common years).
pub fn age_on(birth: NaiveDate, on: NaiveDate) -> i32 {
    let mut age = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        age -= 1;
    }
    age
}

/// Citizen IDs in clear anywhere in `data` (a database file, a dump, a log, an HTTP body): every
/// run of 18 characters not inside a longer number, with a valid check character and a birth date
/// between 1880 and `latest_year`. Returns each one's offset and its masked form, so a report of
/// what was found leaks nothing itself.
pub fn find_in_clear(data: &[u8], latest_year: i32) -> Vec<(usize, String)> {
    let mut found = vec![];
    let digit = |b: u8| b.is_ascii_digit();
    let mut i = 0;
    while i + 18 <= data.len() {
        let w = &data[i..i + 18];
        let bounded =
            (i == 0 || !digit(data[i - 1])) && data.get(i + 18).is_none_or(|b| !digit(*b));
        let shaped = w[0] != b'0'
            && w[..17].iter().all(|b| digit(*b))
            && (digit(w[17]) || w[17] == b'X' || w[17] == b'x');
        if bounded && shaped && check_char(&w[..17]) == w[17].to_ascii_uppercase() {
            let text = std::str::from_utf8(w).unwrap_or_default();
            let year: i32 = text[6..10].parse().unwrap_or(0);
            let born = NaiveDate::parse_from_str(&text[6..14], "%Y%m%d").is_ok();
            if born && (1880..=latest_year).contains(&year) {
                found.push((i, format!("{}********{}", &text[..6], &text[14..])));
                i += 18;
                continue;
            }
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    #[test]
    fn known_valid_id() {
        // GB 11643 worked example.
        let id = CitizenId::parse("11010519491231002X", today()).unwrap();
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.sex(), Sex::Female);
        assert_eq!(id.masked(), "110105********002X");
        assert_eq!(format!("{id:?}"), "CitizenId(110105********002X)");
    }

    #[test]
    fn lower_x_normalised() {
        let id = CitizenId::parse(" 11010519491231002x ", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn legacy_15_upgraded() {
        let id = CitizenId::parse("110105491231002", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
    }

    #[test]
    fn errors() {
        assert_eq!(CitizenId::parse("", today()), Err(CitizenIdError::Empty));
        assert_eq!(
            CitizenId::parse("1234", today()),
            Err(CitizenIdError::Length(4))
        );
        assert_eq!(
            CitizenId::parse("110105194912310021", today()),
            Err(CitizenIdError::CheckChar)
        );
        assert_eq!(
            CitizenId::parse("11010519491231002A", today()),
            Err(CitizenIdError::Chars)
        );
        let bad_date = compose("110105", NaiveDate::from_ymd_opt(1949, 1, 1).unwrap(), 2)
            .replacen("19490101", "19490231", 1);
        let mut b = bad_date[..17].to_string();
        b.push(check_char(b.as_bytes()) as char);
        assert_eq!(
            CitizenId::parse(&b, today()),
            Err(CitizenIdError::BirthDate)
        );
        let future = compose("110105", NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), 2);
        assert_eq!(
            CitizenId::parse(&future, today()),
            Err(CitizenIdError::FutureBirth)
        );
    }

    #[test]
    fn ages_on_birthdays() {
        let b = NaiveDate::from_ymd_opt(1946, 11, 23).unwrap();
        assert_eq!(age_on(b, today()), 80);
        assert_eq!(age_on(b, today().pred_opt().unwrap()), 79);
        let leap = NaiveDate::from_ymd_opt(1944, 2, 29).unwrap();
        assert_eq!(
            age_on(leap, NaiveDate::from_ymd_opt(2025, 2, 28).unwrap()),
            80
        );
        assert_eq!(
            age_on(leap, NaiveDate::from_ymd_opt(2025, 3, 1).unwrap()),
            81
        );
    }

    #[test]
    fn finds_ids_in_clear_and_nothing_else() {
        let id = compose("320682", NaiveDate::from_ymd_opt(1940, 3, 1).unwrap(), 12);
        let masked = format!("{}********{}", &id[..6], &id[14..]);
        let text = format!("name=王秀英 id={id}, again:{id}\n");
        let hits = find_in_clear(text.as_bytes(), 2026);
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[0].1, masked);
        // Inside a longer number, masked, or with a wrong check character: not an ID.
        let mut wrong = id.clone().into_bytes();
        wrong[17] = if wrong[17] == b'1' { b'2' } else { b'1' };
        for s in [format!("9{id}"), masked, String::from_utf8(wrong).unwrap()] {
            assert!(find_in_clear(s.as_bytes(), 2026).is_empty(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn composed_ids_round_trip(days in 0i64..45000, seq in 0u32..1000) {
            let birth = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap() + chrono::Duration::days(days);
            prop_assume!(birth <= today());
            let s = compose("320682", birth, seq);
            let id = CitizenId::parse(&s, today()).unwrap();
            prop_assert_eq!(id.birth_date(), birth);
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(id.sex() == Sex::Male, seq % 2 == 1);
        }

        #[test]
        fn one_changed_digit_is_caught(days in 0i64..40000, seq in 0u32..1000, pos in 0usize..17, delta in 1u8..10) {
            let birth = NaiveDate::from_ymd_opt(1920, 1, 1).unwrap() + chrono::Duration::days(days);
            let s = compose("320682", birth, seq);
            let mut b = s.into_bytes();
            b[pos] = b'0' + (b[pos] - b'0' + delta) % 10;
            let s2 = String::from_utf8(b).unwrap();
            prop_assert!(CitizenId::parse(&s2, today()).is_err());
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = CitizenId::parse(&s, today());
        }
    }
}

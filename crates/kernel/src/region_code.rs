//! 统计用区划代码: 12 digits = 2 province, 2 city, 2 county, 3 town, 3 village.
//! A subtree is the contiguous code range [prefix000…, prefix999…], which is what makes scoping one
//! indexed range predicate.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum RegionLevel {
    Province = 1,
    City = 2,
    County = 3,
    Town = 4,
    Village = 5,
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegionCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("区划代码应为12位数字")]
    Format,
    #[error("区划代码的层级不连续（下级有值而上级为0）")]
    Gap,
}

impl RegionCode {
    pub fn parse(s: &str) -> Result<RegionCode, RegionCodeError> {
        let s = s.trim();
        // Short forms (6-digit county, 9-digit town) are padded: officers often type those.
        let padded;
        let s = if matches!(s.len(), 2 | 4 | 6 | 9) && s.bytes().all(|b| b.is_ascii_digit()) {
            padded = format!("{s:0<12}");
            padded.as_str()
        } else {
            s
        };
        if s.len() != 12 || !s.bytes().all(|b| b.is_ascii_digit()) || &s[..2] == "00" {
            return Err(RegionCodeError::Format);
        }
        let r = RegionCode(s.to_string());
        // Every segment above the level must be non-zero (no village under a zero town).
        let lvl = r.level() as usize;
        let segs = r.segments();
        if segs[..lvl].iter().any(|x| x.bytes().all(|b| b == b'0')) {
            return Err(RegionCodeError::Gap);
        }
        Ok(r)
    }

    fn segments(&self) -> [&str; 5] {
        let s = &self.0;
        [&s[0..2], &s[2..4], &s[4..6], &s[6..9], &s[9..12]]
    }

    pub fn level(&self) -> RegionLevel {
        let segs = self.segments();
        let zero = |x: &str| x.bytes().all(|b| b == b'0');
        if !zero(segs[4]) {
            RegionLevel::Village
        } else if !zero(segs[3]) {
            RegionLevel::Town
        } else if !zero(segs[2]) {
            RegionLevel::County
        } else if !zero(segs[1]) {
            RegionLevel::City
        } else {
            RegionLevel::Province
        }
    }

    /// The significant prefix: 2, 4, 6, 9 or 12 digits.
    pub fn prefix(&self) -> &str {
        let n = match self.level() {
            RegionLevel::Province => 2,
            RegionLevel::City => 4,
            RegionLevel::County => 6,
            RegionLevel::Town => 9,
            RegionLevel::Village => 12,
        };
        &self.0[..n]
    }

    /// Inclusive code range of the subtree (lexicographic = numeric for fixed-width digits).
    pub fn subtree_range(&self) -> (String, String) {
        let p = self.prefix();
        (format!("{p:0<12}"), format!("{p:9<12}"))
    }

    pub fn contains(&self, other: &RegionCode) -> bool {
        other.0.starts_with(self.prefix())
    }

    pub fn parent(&self) -> Option<RegionCode> {
        let keep = match self.level() {
            RegionLevel::Province => return None,
            RegionLevel::City => 2,
            RegionLevel::County => 4,
            RegionLevel::Town => 6,
            RegionLevel::Village => 9,
        };
        Some(RegionCode(format!("{:0<12}", &self.0[..keep])))
    }

    /// This code and every one above it, nearest first: where a rule published for a place is
    /// looked for (the place's own, else its town's, its county's …).
    pub fn lineage(&self) -> Vec<RegionCode> {
        let mut chain = vec![self.clone()];
        while let Some(p) = chain.last().and_then(|c| c.parent()) {
            chain.push(p);
        }
        chain
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for RegionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RegionCode({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_and_ranges() {
        let c = RegionCode::parse("320682").unwrap();
        assert_eq!(c.as_str(), "320682000000");
        assert_eq!(c.level(), RegionLevel::County);
        assert_eq!(
            c.subtree_range(),
            ("320682000000".into(), "320682999999".into())
        );
        let v = RegionCode::parse("320682101201").unwrap();
        assert_eq!(v.level(), RegionLevel::Village);
        assert!(c.contains(&v));
        assert_eq!(v.parent().unwrap().as_str(), "320682101000");
        assert_eq!(RegionCode::parse("320600000001"), Err(RegionCodeError::Gap));
        assert_eq!(
            RegionCode::parse("32068210120"),
            Err(RegionCodeError::Format)
        );
        assert_eq!(
            RegionCode::parse("00068210120a"),
            Err(RegionCodeError::Format)
        );
    }

    proptest! {
        #[test]
        fn ancestors_contain_and_range_agrees(p in 11u32..99, c in 1u32..99, d in 1u32..99, t in 1u32..999, v in 1u32..999) {
            let code = RegionCode::parse(&format!("{p:02}{c:02}{d:02}{t:03}{v:03}")).unwrap();
            let mut anc = code.parent();
            while let Some(a) = anc {
                prop_assert!(a.contains(&code));
                let (lo, hi) = a.subtree_range();
                prop_assert!(lo.as_str() <= code.as_str() && code.as_str() <= hi.as_str());
                prop_assert!(a.level() < code.level());
                anc = a.parent();
            }
        }
    }
}

//! Masking of personal information for every payload, export and log line.

/// Citizen ID: keep the first 6 and last 4 characters (`320682********1234`).
pub fn citizen_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let n = chars.len();
    let mut out: String = chars[..6].iter().collect();
    out.push_str(&"*".repeat(n - 10));
    out.extend(&chars[n - 4..]);
    out
}

/// Phone: keep the first 3 and last 4 digits (`138****5678`).
pub fn phone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    if n < 8 {
        return "*".repeat(n);
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(n - 7));
    out.extend(&chars[n - 4..]);
    out
}

/// Name in a message that leaves the platform: the family name, the rest masked (`张**`).
pub fn name(s: &str) -> String {
    let mut chars = s.trim().chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn masks() {
        assert_eq!(
            super::citizen_id("320682194601011234"),
            "320682********1234"
        );
        assert_eq!(super::phone("13812345678"), "138****5678");
        assert_eq!(super::phone("123"), "***");
    }

    #[test]
    fn names_keep_the_family_name() {
        assert_eq!(super::name("张秀英"), "张**");
        assert_eq!(super::name(" 李明 "), "李*");
        assert_eq!(super::name(""), "");
    }
}

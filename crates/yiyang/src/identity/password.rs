//! Argon2id password hashing (run off the async threads) and the password policy.

use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use argon2::{Algorithm, Argon2, Params, Version};

fn argon() -> Argon2<'static> {
    // OWASP's Argon2id baseline (19 MiB, 2 passes): ~30 ms here, enough to make guessing expensive.
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(19 * 1024, 2, 1, None).expect("params"),
    )
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    argon()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2")
        .to_string()
}

pub fn verify(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(h) => argon().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

pub async fn hash_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .expect("hash task")
}

pub async fn verify_async(password: String, phc: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// A hash of a random password: verified against for unknown users so that they take as long
/// as known ones (no user enumeration by timing).
pub fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash(&crate::platform::crypto::random_token(16)))
}

const COMMON: &[&str] = &[
    "12345678",
    "123456789",
    "1234567890",
    "password",
    "password1",
    "Password1",
    "qwertyui",
    "qwerty123",
    "11111111",
    "88888888",
    "66666666",
    "00000000",
    "abc12345",
    "abcd1234",
    "a1234567",
    "iloveyou",
    "admin123",
    "admin1234",
    "administrator",
    "root1234",
    "woaini1314",
    "1qaz2wsx",
    "1q2w3e4r",
    "zxcvbnm1",
    "asdfghjk",
    "p@ssw0rd",
    "P@ssw0rd",
    "changeme",
    "welcome1",
    "yiyang123",
    "12341234",
    "87654321",
];

/// Characters a password must have at least.
pub const MIN_CHARS: usize = 12;

/// At least 12 characters of at least two kinds (lower-case, upper-case, digits, anything else —
/// Chinese characters and symbols), not only spaces, not a well-known password, not the username.
pub fn check_policy(password: &str, username: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_CHARS {
        return Err(format!("密码至少需要 {MIN_CHARS} 个字符"));
    }
    if n > 128 {
        return Err("密码不能超过 128 个字符".into());
    }
    if password.trim().is_empty() {
        return Err("密码不能全是空格".into());
    }
    let kinds = [
        password.chars().any(|c| c.is_ascii_lowercase()),
        password.chars().any(|c| c.is_ascii_uppercase()),
        password.chars().any(|c| c.is_ascii_digit()),
        password
            .chars()
            .any(|c| !c.is_ascii_alphanumeric() && !c.is_whitespace()),
    ];
    if kinds.iter().filter(|k| **k).count() < 2 {
        return Err("密码需包含至少两类字符（小写字母、大写字母、数字、符号或汉字）".into());
    }
    let lower = password.to_lowercase();
    if COMMON.iter().any(|c| lower.contains(&c.to_lowercase())) {
        return Err("该密码包含常见密码，容易被猜到，请换一个".into());
    }
    // (A name of two or three letters is in many good passwords by chance: only the whole of it.)
    let user = username.trim().to_lowercase();
    if (user.chars().count() >= 4 && lower.contains(&user)) || (!user.is_empty() && lower == user) {
        return Err("密码不能包含用户名".into());
    }
    Ok(())
}

/// A temporary password for a reset, handed to the owner once: 16 characters of letters and digits
/// without look-alikes (0/O, 1/l/I), with at least one of each kind.
pub fn temporary() -> String {
    use rand::Rng;
    const LOWER: &[u8] = b"abcdefghijkmnpqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    let mut rng = rand::thread_rng();
    loop {
        let s: String = (0..16)
            .map(|i| {
                let set = [LOWER, UPPER, DIGIT][(i + rng.gen_range(0..3)) % 3];
                set[rng.gen_range(0..set.len())] as char
            })
            .collect();
        if check_policy(&s, "").is_ok()
            && s.chars().any(|c| c.is_ascii_digit())
            && s.chars().any(|c| c.is_ascii_lowercase())
        {
            return s;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_verify_policy() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        let p = super::check_policy;
        assert!(p("Short-1", "u").is_err());
        assert!(p("aaaaaaaaaaaaaa", "u").is_err(), "one kind");
        assert!(p("12345678901234", "u").is_err(), "one kind");
        assert!(p("              ", "u").is_err());
        assert!(p("MyPassword1xyz", "u").is_err(), "contains a common one");
        assert!(p("zhangsan99-2026", "zhangsan99").is_err());
        assert!(
            p("ZhangSan99-2026", "zhangsan99").is_err(),
            "case does not hide it"
        );
        assert!(p("县民政局老龄科2026!", "u").is_ok());
        assert!(p("Ruga0-Yanglao-Keji", "u").is_ok());
        for _ in 0..50 {
            assert!(p(&super::temporary(), "u").is_ok());
        }
    }
}

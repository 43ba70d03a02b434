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

/// Minimum 8 characters, not a well-known password, not the username.
pub fn check_policy(password: &str, username: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("密码至少需要 8 个字符".into());
    }
    if password.chars().count() > 128 {
        return Err("密码不能超过 128 个字符".into());
    }
    if COMMON.iter().any(|c| c.eq_ignore_ascii_case(password)) {
        return Err("该密码过于常见，请换一个".into());
    }
    if password.eq_ignore_ascii_case(username) {
        return Err("密码不能与用户名相同".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_verify_policy() {
        let h = super::hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(super::verify("correct horse", &h));
        assert!(!super::verify("wrong horse", &h));
        assert!(super::check_policy("short", "u").is_err());
        assert!(super::check_policy("password1", "u").is_err());
        assert!(super::check_policy("zhangsan99", "zhangsan99").is_err());
        assert!(super::check_policy("县民政局2026!", "u").is_ok());
    }
}

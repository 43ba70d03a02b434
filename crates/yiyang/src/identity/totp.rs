//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s) for the second factor, with base32 secrets that every
//! authenticator app accepts.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buf: u64 = 0;
    let mut bits = 0;
    for &b in data {
        buf = (buf << 8) | b as u64;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = vec![];
    let mut buf: u64 = 0;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=' && *c != b' ') {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u64;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

pub fn new_secret() -> String {
    let mut b = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut b);
    base32_encode(&b)
}

pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    let counter = (unix_secs / 30) as u64;
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(secret).expect("hmac");
    m.update(&counter.to_be_bytes());
    let h = m.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = ((h[off] as u32 & 0x7f) << 24)
        | ((h[off + 1] as u32) << 16)
        | ((h[off + 2] as u32) << 8)
        | h[off + 3] as u32;
    format!("{:06}", bin % 1_000_000)
}

/// Accept the current step and one on either side (clock drift of phones).
pub fn verify(secret_b32: &str, code: &str, unix_secs: i64) -> bool {
    verify_step(secret_b32, code, unix_secs).is_some()
}

/// The time step whose code this is (current or one on either side); the caller takes each step
/// once, so a code seen over a shoulder or in a log cannot be used again.
pub fn verify_step(secret_b32: &str, code: &str, unix_secs: i64) -> Option<i64> {
    let secret = base32_decode(secret_b32)?;
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (-1..=1)
        .map(|d| unix_secs + d * 30)
        .find(|t| code_at(&secret, *t) == code)
        .map(|t| t / 30)
}

pub fn otpauth_url(secret_b32: &str, username: &str) -> String {
    format!("otpauth://totp/yiyang:{username}?secret={secret_b32}&issuer=yiyang&digits=6&period=30")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn rfc6238_vectors() {
        // RFC 6238 appendix B, SHA1 secret "12345678901234567890", 8 digits there; we check the last 6.
        let s = b"12345678901234567890";
        assert_eq!(code_at(s, 59), "287082");
        assert_eq!(code_at(s, 1111111109), "081804");
        assert_eq!(code_at(s, 20000000000), "353130");
        let b32 = base32_encode(s);
        assert_eq!(b32, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(base32_decode(&b32).unwrap(), s);
        assert!(verify(&b32, "287082", 59 + 30));
        assert!(!verify(&b32, "287082", 59 + 90));
    }
}

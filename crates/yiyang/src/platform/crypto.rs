//! Field encryption (AES-256-GCM) and blind indexes (HMAC-SHA256) for citizen IDs and phones.
//! The key lives in a file outside the database, created on first run with mode 0600.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use std::path::Path;

#[derive(Clone)]
pub struct KeyRing {
    cipher: Aes256Gcm,
    /// The HMAC keyed once: each blind index clones it instead of hashing the key's two pads again
    /// (half the HMAC's work on a value shorter than a block).
    mac: Hmac<Sha256>,
}

const KEY_FILE_HEADER: &str = "yiyang-key-v1";

/// The audit chain's MAC key. Derived from the key file and never stored in the database, so
/// whoever can write the database cannot recompute the chain after changing a row.
#[derive(Clone)]
pub struct ChainKey(Hmac<Sha256>);

impl ChainKey {
    /// A fresh MAC under this key.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}

impl KeyRing {
    pub fn from_bytes(enc: [u8; 32], mac: [u8; 32]) -> KeyRing {
        KeyRing {
            cipher: Aes256Gcm::new(&enc.into()),
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&mac).expect("hmac key"),
        }
    }

    /// The audit chain's key: the blind-index key's MAC of a fixed label (one key file, two
    /// independent keys).
    pub fn chain_key(&self) -> ChainKey {
        let k = self
            .mac
            .clone()
            .chain_update(b"yiyang audit chain v1")
            .finalize()
            .into_bytes();
        ChainKey(<Hmac<Sha256> as Mac>::new_from_slice(&k).expect("hmac key"))
    }

    /// Load the key file, creating it (0600) when absent.
    pub fn load_or_create(path: &Path) -> anyhow::Result<KeyRing> {
        if !path.exists() {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            let mut k = [0u8; 64];
            rand::thread_rng().fill_bytes(&mut k);
            let text = format!("{KEY_FILE_HEADER}\n{}\n", hex::encode(k));
            write_private(path, text.as_bytes())
                .with_context(|| format!("无法创建密钥文件 {path:?}"))?;
            tracing::warn!(path = %path.display(), "created a new data key file: back it up, without it encrypted fields cannot be read");
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("无法读取密钥文件 {path:?}"))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            bail!("密钥文件 {path:?} 格式不正确");
        }
        let k =
            hex::decode(lines.next().unwrap_or("").trim()).context("密钥文件内容不是十六进制")?;
        if k.len() != 64 {
            bail!("密钥文件 {path:?} 长度不正确");
        }
        let mut enc = [0u8; 32];
        let mut mac = [0u8; 32];
        enc.copy_from_slice(&k[..32]);
        mac.copy_from_slice(&k[32..]);
        Ok(KeyRing::from_bytes(enc, mac))
    }

    /// nonce (12 bytes) || ciphertext+tag
    pub fn encrypt(&self, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .expect("aes-gcm encrypt");
        let mut out = Vec::with_capacity(12 + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn decrypt(&self, blob: &[u8]) -> anyhow::Result<String> {
        if blob.len() < 12 + 16 {
            bail!("密文长度不正确");
        }
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&blob[..12]), &blob[12..])
            .map_err(|_| anyhow::anyhow!("解密失败：密钥文件与数据库不匹配或数据被篡改"))?;
        Ok(String::from_utf8(plain)?)
    }

    /// Keyed, deterministic index: equal inputs give equal tokens, without the key nothing can be inferred.
    pub fn blind_index(&self, domain: &str, value: &str) -> String {
        let mut m = self.mac.clone();
        m.update(domain.as_bytes());
        m.update(&[0]);
        m.update(value.as_bytes());
        let out = m.finalize().into_bytes();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&out[..18])
    }

    /// A fingerprint stored in the database so a wrong key file is detected at start.
    pub fn fingerprint(&self) -> String {
        self.blind_index("key-fingerprint", "yiyang")
    }
}

#[cfg(unix)]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
#[cfg(not(unix))]
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, data)
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(Sha256::digest(data))
}

pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Citizen IDs in clear in these files, or in the files under these folders: one line per find,
/// `file: offset N: 320682********1234`. Files are read 8 MB at a time.
pub fn scan_clear_ids(paths: &[std::path::PathBuf]) -> std::io::Result<Vec<String>> {
    use std::io::Read;
    let year = chrono::Datelike::year(&crate::platform::today());
    let mut files = vec![];
    let mut todo: Vec<std::path::PathBuf> = paths.to_vec();
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        } else if p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    let mut found = vec![];
    for f in files {
        let Ok(mut file) = std::fs::File::open(&f) else {
            continue;
        };
        // Each read keeps the last 19 bytes of the one before: an ID that starts there is found
        // whole in the next, with the byte before it; one found at 0 was reported already.
        const KEEP: usize = 19;
        let mut buf: Vec<u8> = vec![];
        let mut base = 0usize;
        let mut chunk = vec![0u8; 8 << 20];
        loop {
            let n = file.read(&mut chunk)?;
            let last = n == 0;
            buf.extend_from_slice(&chunk[..n]);
            let end = if last {
                buf.len() + 1
            } else {
                buf.len().saturating_sub(KEEP - 1)
            };
            for (at, masked) in yiyang_kernel::citizen_id::find_in_clear(&buf, year) {
                if at < end && !(base > 0 && at == 0) {
                    found.push(format!("{}: offset {}: {masked}", f.display(), base + at));
                }
            }
            if last {
                break;
            }
            let cut = buf.len().saturating_sub(KEEP);
            base += cut;
            buf.drain(..cut);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_index() {
        let k = KeyRing::from_bytes([1; 32], [2; 32]);
        let c1 = k.encrypt("320682194601011234");
        let c2 = k.encrypt("320682194601011234");
        assert_ne!(c1, c2, "random nonce");
        assert_eq!(k.decrypt(&c1).unwrap(), "320682194601011234");
        assert_eq!(k.blind_index("cid", "a"), k.blind_index("cid", "a"));
        assert_ne!(k.blind_index("cid", "a"), k.blind_index("phone", "a"));
        let mut bad = c1.clone();
        bad[20] ^= 1;
        assert!(k.decrypt(&bad).is_err());
    }

    #[test]
    fn clear_ids_are_found_across_read_boundaries_once() {
        let id = yiyang_kernel::citizen_id::compose(
            "320682",
            chrono::NaiveDate::from_ymd_opt(1941, 5, 6).unwrap(),
            7,
        );
        let dir = tempfile::tempdir().unwrap();
        // One ID across the first 8 MB read's end, one inside the kept tail, one at the start.
        for at in [(8 << 20) - 9, (8 << 20) - 19, (8 << 20) - 18, 0] {
            let mut data = vec![b'a'; 9 << 20];
            data[at..at + 18].copy_from_slice(id.as_bytes());
            let f = dir.path().join(format!("f{at}"));
            std::fs::write(&f, &data).unwrap();
            let found = scan_clear_ids(&[f]).unwrap();
            assert_eq!(found.len(), 1, "at {at}: {found:?}");
            assert!(found[0].contains(&format!("offset {at}:")), "{found:?}");
            assert!(!found[0].contains(&id), "the report masks it");
        }
    }
}

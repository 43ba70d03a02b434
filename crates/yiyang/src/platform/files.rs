//! Files the platform keeps beside its database (visit photos): stored by their SHA-256, so the
//! same file sent twice is kept once and a stored file cannot be changed under its name.
//!
//! Behind [`FileStore`], so a county may put them on shared storage; [`LocalDisk`] (a directory,
//! by default `files/` beside the key file) is what runs here.

use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

pub trait FileStore: Send + Sync {
    /// Keep `bytes`; their SHA-256 in hex is their name. Durable when it returns.
    fn put<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, anyhow::Result<String>>;
    /// The file of that name, if kept.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>>;
}

/// Files in a directory, two levels by the name's first characters (`ab/cdef…`).
pub struct LocalDisk {
    dir: PathBuf,
}

impl LocalDisk {
    pub fn new(dir: impl Into<PathBuf>) -> LocalDisk {
        LocalDisk { dir: dir.into() }
    }

    /// Where a name lives; `None` for anything but 64 lowercase hex digits (no path tricks).
    fn path(&self, name: &str) -> Option<PathBuf> {
        let ok = name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| self.dir.join(&name[..2]).join(&name[2..]))
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl FileStore for LocalDisk {
    fn put<'a>(&'a self, bytes: &'a [u8]) -> BoxFuture<'a, anyhow::Result<String>> {
        let name = sha256_hex(bytes);
        let bytes = bytes.to_vec();
        Box::pin(async move {
            let path = self.path(&name).expect("a SHA-256 in hex");
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                if path.exists() {
                    return Ok(());
                }
                let dir = path.parent().expect("two levels");
                std::fs::create_dir_all(dir)?;
                // Written aside and renamed: a reader never sees half a file, a crash leaves at
                // most a stray temporary one.
                let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
                {
                    use std::io::Write;
                    let mut f = std::fs::File::create(&tmp)?;
                    f.write_all(&bytes)?;
                    f.sync_all()?;
                }
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(dir)?.sync_all()?;
                Ok(())
            })
            .await??;
            Ok(name)
        })
    }

    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, anyhow::Result<Option<Vec<u8>>>> {
        Box::pin(async move {
            let Some(path) = self.path(name) else {
                return Ok(None);
            };
            match tokio::fs::read(&path).await {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_is_kept_once_under_its_hash_and_odd_names_find_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDisk::new(dir.path());
        let a = store.put(b"photo").await.unwrap();
        assert_eq!(a, sha256_hex(b"photo"));
        assert_eq!(store.put(b"photo").await.unwrap(), a);
        assert_eq!(store.get(&a).await.unwrap().as_deref(), Some(&b"photo"[..]));
        assert_eq!(store.get("../../etc/passwd").await.unwrap(), None);
        assert_eq!(store.get(&"0".repeat(64)).await.unwrap(), None);
        let files = walk(dir.path());
        assert_eq!(files, 1, "one file, no temporary left");
    }

    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
}

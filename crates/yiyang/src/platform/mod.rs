//! Shared infrastructure every capability uses: database, keys, errors, clock, HTTP plumbing.
pub mod crypto;
pub mod db;
pub mod error;
pub mod migrations;
pub mod outbox;
pub mod web;

/// Threads for a whole-registry job's CPU work (deciding, packing, inflating): one per core, at
/// most 8.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// Business dates are in China Standard Time (UTC+8, no DST since 1991).
pub fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Hand the memory of a finished whole-registry job back to the system. glibc keeps freed heap
/// in its arenas, so a server that evaluated a 400k county once would stay at its peak (measured:
/// 342 MB RSS after one run, against a 300 MB budget for serving that county).
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

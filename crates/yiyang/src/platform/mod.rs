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

/// While alive, the process gets no new transparent huge pages (`prctl(PR_SET_THP_DISABLE)`, what
/// mimalloc's `allow_thp=0` does); the last guard dropped allows them again. For jobs that allocate
/// and free many small values: mimalloc hands freed memory back 64 KB at a time, and the kernel
/// then zeroed a whole 2 MB page again on the next touch. A 104k assessment import spent 0.4–0.8 s
/// of its client's system time on that, 0.15–0.27 s without. Not process-wide: a registry load on
/// SQLite, whose 1 GB page cache is few large allocations, was 0.4 s slower without huge pages.
pub struct NoHugePages(());

static NO_HUGE_PAGES: std::sync::Mutex<usize> = std::sync::Mutex::new(0);

impl NoHugePages {
    pub fn new() -> NoHugePages {
        let mut n = NO_HUGE_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        if *n == 0 {
            set_thp_disabled(true);
        }
        *n += 1;
        NoHugePages(())
    }
}

impl Default for NoHugePages {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NoHugePages {
    fn drop(&mut self) {
        let mut n = NO_HUGE_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        *n -= 1;
        if *n == 0 {
            set_thp_disabled(false);
        }
    }
}

fn set_thp_disabled(off: bool) {
    // SAFETY (below): prctl with PR_SET_THP_DISABLE takes plain integers and touches no memory
    // of ours; it only changes how later page faults of this process are served.
    #[cfg(target_os = "linux")]
    {
        let z: libc::c_ulong = 0;
        // SAFETY: see above.
        let r = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(off), z, z, z) };
        if r != 0 {
            tracing::debug!(off, "prctl(PR_SET_THP_DISABLE) failed");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = off;
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

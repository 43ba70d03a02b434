//! Shared infrastructure every capability uses: database, keys, errors, clock, HTTP plumbing.
pub mod config;
pub mod crypto;
pub mod db;
pub mod error;
pub mod files;
pub mod metrics;
pub mod migrations;
pub mod openapi;
pub mod outbox;
pub mod sheet;
pub mod web;

/// Threads for a whole-registry job's CPU work (deciding, packing, inflating): one per core, at
/// most 8.
pub fn cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
}

/// While alive, the process gets no new transparent huge pages (`prctl(PR_SET_THP_DISABLE)`, what
/// mimalloc's `allow_thp=0` does); the last guard dropped restores what was set before. For jobs
/// that allocate and free many small values: mimalloc hands freed memory back 64 KB at a time, and
/// the kernel then zeroed a whole 2 MB page again on the next touch. A 104k assessment import
/// spent 0.4–0.8 s of its client's system time on that, 0.15–0.27 s without. Not process-wide: a
/// registry load on SQLite, whose 1 GB page cache is few large allocations, was 0.4 s slower
/// without huge pages.
pub struct NoHugePages(());

/// Runs CPU-heavy synchronous work from async code without holding up the tasks queued on this
/// runtime worker (tokio hands them to the other workers first); directly on a single-threaded
/// runtime (the tests').
pub fn heavy<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// While it lives, the calling thread runs at a lower CPU priority (nice 10), then as before.
/// Bulk work on every core (an eligibility run deciding and packing a county) then yields the
/// cores to the requests of people waiting: on two cores such a run starved PostgreSQL's
/// backends and requests waited 2 s for a pooled connection. (On Linux the priority is the
/// thread's own.)
pub struct Background(#[allow(dead_code)] i32);

impl Background {
    pub fn new() -> Background {
        #[cfg(target_os = "linux")]
        // SAFETY: get/setpriority on the calling thread's id change only its scheduling.
        unsafe {
            let tid = libc::gettid() as libc::id_t;
            let before = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, before.max(10));
            Background(before)
        }
        #[cfg(not(target_os = "linux"))]
        Background(0)
    }
}

impl Default for Background {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // Raising the priority back needs no privilege only down to the starting value, which
        // this is (RLIMIT_NICE permitting); otherwise the thread stays low, harmlessly.
        #[cfg(target_os = "linux")]
        // SAFETY: as above.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, self.0);
        }
    }
}

/// Guards alive, and whether huge pages were off before the first of them.
static NO_HUGE_PAGES: std::sync::Mutex<(usize, bool)> = std::sync::Mutex::new((0, false));

impl NoHugePages {
    pub fn new() -> NoHugePages {
        let mut g = NO_HUGE_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 == 0 {
            g.1 = thp(None);
            thp(Some(true));
        }
        g.0 += 1;
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
        let mut g = NO_HUGE_PAGES.lock().unwrap_or_else(|e| e.into_inner());
        g.0 -= 1;
        if g.0 == 0 && !g.1 {
            thp(Some(false));
        }
    }
}

/// Set whether this process's transparent huge pages are off (`Some`), or read it (`None`);
/// returns whether they are off. Elsewhere than on Linux, nothing and false.
fn thp(set: Option<bool>) -> bool {
    #[cfg(target_os = "linux")]
    {
        let z: libc::c_ulong = 0;
        // SAFETY: prctl with PR_{SET,GET}_THP_DISABLE takes plain integers and touches no memory
        // of ours; it only changes (or tells) how later page faults of this process are served.
        let r = unsafe {
            match set {
                Some(off) => {
                    libc::prctl(libc::PR_SET_THP_DISABLE, libc::c_ulong::from(off), z, z, z)
                }
                None => libc::prctl(libc::PR_GET_THP_DISABLE, z, z, z, z),
            }
        };
        match set {
            Some(off) => {
                if r != 0 {
                    tracing::debug!(off, "prctl(PR_SET_THP_DISABLE) failed");
                }
                off
            }
            None => r == 1,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = set;
        false
    }
}

/// Business dates are in China Standard Time (UTC+8, no DST since 1991).
pub fn today() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive()
}

/// The local (UTC+8) day of a stored `*_at` instant (UTC RFC 3339): its first ten characters are
/// the UTC day, a day early from 16:00 UTC on. `None` when it is not RFC 3339.
pub fn local_day(at: &str) -> Option<chrono::NaiveDate> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| (t.with_timezone(&chrono::Utc) + chrono::Duration::hours(8)).date_naive())
}

/// The instant a local (UTC+8) day begins, written like the stored `*_at` columns (UTC RFC 3339),
/// so a day's rows are found by comparing text.
pub fn day_start_utc(d: chrono::NaiveDate) -> String {
    let t = d.and_hms_opt(0, 0, 0).unwrap_or_default() - chrono::Duration::hours(8);
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
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

#[cfg(all(test, target_os = "linux"))]
mod thp_tests {
    use super::*;

    #[test]
    fn no_huge_pages_while_a_guard_lives_then_as_before() {
        let before = thp(None);
        {
            let _a = NoHugePages::new();
            let _b = NoHugePages::new();
            assert!(thp(None));
            drop(_a);
            assert!(thp(None), "one guard still alive");
        }
        assert_eq!(thp(None), before);
        // Off before the first guard: it stays off after the last.
        thp(Some(true));
        drop(NoHugePages::new());
        assert!(thp(None));
        thp(Some(before));
    }
}

#[cfg(test)]
mod day_tests {
    /// A local day starts at 16:00 UTC the day before; stored stamps compare as text.
    #[test]
    fn a_stored_instant_falls_on_its_local_day() {
        let d = |s: &str| super::local_day(s).map(|d| d.to_string());
        assert_eq!(d("2026-12-06T15:59:59.000Z").as_deref(), Some("2026-12-06"));
        assert_eq!(d("2026-12-06T16:00:00.000Z").as_deref(), Some("2026-12-07"));
        assert_eq!(d("2026-12-06"), None);
    }

    #[test]
    fn local_day_starts_eight_hours_earlier_in_utc() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        assert_eq!(super::day_start_utc(d), "2026-12-05T16:00:00.000Z");
        let start = super::day_start_utc(d);
        assert!("2026-12-05T16:10:00.000Z" >= start.as_str());
        assert!("2026-12-05T15:59:59.999Z" < start.as_str());
    }
}

/// Bulk jobs writing now (imports, eligibility runs): while there is one, [`pace`] admits
/// requests at a bounded rate.
static BULK_JOBS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Marks a bulk job as running while it lives.
pub struct BulkJob(());

impl BulkJob {
    pub fn start() -> BulkJob {
        BULK_JOBS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        BulkJob(())
    }
}

/// Bulk jobs writing now.
pub fn bulk_jobs_running() -> usize {
    BULK_JOBS.load(std::sync::atomic::Ordering::Relaxed)
}

impl Drop for BulkJob {
    fn drop(&mut self) {
        BULK_JOBS.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Runs a bulk job (an import, an eligibility run) on a thread and runtime of its own, with
/// `connections` to the database of its own. On the server's runtime each of a job's thousands
/// of statements waited twice behind the crowd of requests: for a pooled connection, and, once
/// answered, for a worker to take the job up again. With 64 readers a PostgreSQL import ran at
/// half its speed while a third of the two cores stood idle. Apart, it waits for the database.
pub fn spawn_apart<F, Fut>(name: &str, db: &db::Db, connections: u32, job: F)
where
    F: FnOnce(db::Db) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let shared = db.clone();
    let run = move || async move {
        match shared.with_own_pool(connections).await {
            Ok(own) => {
                drop(shared);
                job(own.clone()).await;
                own.pool.close().await;
            }
            // No connections of its own (the database at its limit): the job shares the
            // server's pool.
            Err(e) => {
                tracing::warn!(error = %e, "bulk job: no connections of its own");
                job(shared).await;
            }
        }
    };
    if let Err(run) = on_own_thread(name, run) {
        tokio::spawn(run());
    }
}

/// Runs `make()`'s future to its end on a thread named `yiyang-{name}` with a current-thread
/// runtime of its own (bulk jobs and the long-lived writers). Gives `make` back when no thread
/// can be had, for the caller to run it elsewhere.
pub fn on_own_thread<F, Fut>(name: &str, make: F) -> Result<(), F>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    // `spawn` consumes its closure even when it fails: `make` waits here to be taken back.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(make)));
    let take = |s: &std::sync::Mutex<Option<F>>| s.lock().ok().and_then(|mut m| m.take());
    let (taken, label) = (slot.clone(), name.to_string());
    let spawned = std::thread::Builder::new()
        .name(format!("yiyang-{name}"))
        .spawn(move || {
            let Some(make) = take(&taken) else { return };
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(make()),
                Err(e) => tracing::error!(error = %e, thread = %label, "no runtime"),
            }
        });
    match spawned {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, thread = %name, "no thread");
            take(&slot).map_or(Ok(()), Err)
        }
    }
}

/// Requests a second a core admitted while a bulk job runs, by engine (see [`bulk_rate`]).
static PER_CORE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(350);

/// The serving engine sets the default rate before the first request: a PostgreSQL read costs a
/// server process's time as well, so fewer are admitted than on SQLite.
pub fn use_engine(backend: db::Backend) {
    let (per_core, places) = match backend {
        db::Backend::Sqlite => (450, 0),
        db::Backend::Postgres => (350, 1),
    };
    PER_CORE.store(per_core, std::sync::atomic::Ordering::Relaxed);
    PLACES_PER_CORE.store(places, std::sync::atomic::Ordering::Relaxed);
}

/// Requests a second admitted while a bulk job runs: `YIYANG_BULK_RATE`, or 450 a core on
/// SQLite and 350 on PostgreSQL. Far above what a county's offices send (a call centre's
/// operators, a few hundred a second at most), it keeps a job its share of the machine when
/// clients send requests back to back. Measured on two cores with 64 connections reading and 4
/// writing without pause during a 1M-row import into a 200k county (`bench/import-meanwhile.sh`):
/// with no limit, PostgreSQL's import ran at a quarter of its speed alone; at 750 a core at 0.43;
/// at 350 at 0.78 with reads answered in 104 ms at p99. SQLite at 350 a core kept its speed but
/// reads waited 220 ms at p99 while a run wrote; at 450, 0.89 of its speed and 176 ms.
fn bulk_rate() -> f64 {
    static RATE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        std::env::var("YIYANG_BULK_RATE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|r| *r >= 10.0)
            .unwrap_or_else(|| {
                PER_CORE.load(std::sync::atomic::Ordering::Relaxed) as f64
                    * std::thread::available_parallelism().map_or(2, |n| n.get()) as f64
            })
    })
}

tokio::task_local! {
    /// This request's place among those worked on at once while a bulk job runs (see [`pace`]).
    static PLACE: std::cell::RefCell<Option<tokio::sync::SemaphorePermit<'static>>>;
}

/// Handles a request: paced while a bulk job runs, in its place until it is answered or only
/// waits for a commit ([`leave_place`]).
pub async fn paced<F: std::future::Future>(handle: F) -> F::Output {
    let place = pace().await;
    PLACE.scope(std::cell::RefCell::new(place), handle).await
}

/// The request now only waits (for its audit row or its group to commit, or for the audit
/// head): its place goes to the next. Waiting costs no CPU, and with four places, four reads
/// waiting behind an import's chunk held them all (read p99 526 ms during an assessment import).
/// Outside a request, nothing.
pub fn leave_place() {
    let _ = PLACE.try_with(|p| p.borrow_mut().take());
}

/// Places a core for requests while a bulk job runs, by engine (see [`bulk_concurrency`]).
static PLACES_PER_CORE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Requests worked on at once while a bulk job runs: `YIYANG_BULK_CONCURRENCY`, or on
/// PostgreSQL one a core (no limit on SQLite, where a read is no process of its own and a limit
/// only made reads wait: p99 282 ms against 176–181 without). On PostgreSQL the scheduler shares a
/// core between threads, not jobs: with many readers' database processes
/// runnable beside the import's one, the import gets a small part of a core however few requests
/// a second are admitted. Holding the rest in line in the server, where waiting costs nothing,
/// keeps the import its share. Measured on two cores, 64 connections reading and 4 editing
/// without pause (`bench/import-meanwhile.sh`, PostgreSQL): with no limit the import's own
/// statements ran 1.45 times slower than alone, with four places 1.42, with two 1.15.
fn bulk_concurrency() -> usize {
    static N: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *N.get_or_init(|| {
        std::env::var("YIYANG_BULK_CONCURRENCY")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| {
                PLACES_PER_CORE.load(std::sync::atomic::Ordering::Relaxed)
                    * std::thread::available_parallelism().map_or(2, |n| n.get())
            })
    })
}

/// While a bulk job runs, each request waits for its slot in an even stream of [`bulk_rate`]
/// a second (at 1,500 a second, 64 requests at once wait 43 ms), then for one of
/// [`bulk_concurrency`] places, held until its answer is made; otherwise it goes at once.
pub async fn pace() -> Option<tokio::sync::SemaphorePermit<'static>> {
    if BULK_JOBS.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        return None;
    }
    static NEXT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let gap = std::time::Duration::from_secs_f64(1.0 / bulk_rate());
    let now = std::time::Instant::now();
    let slot = {
        let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
        // A slot left unused in the past is not saved up: no burst after a quiet spell.
        let slot = next.filter(|t| *t > now).unwrap_or(now);
        *next = Some(slot + gap);
        slot
    };
    if slot > now {
        tokio::time::sleep_until(slot.into()).await;
    }
    let n = bulk_concurrency();
    if n == 0 {
        return None;
    }
    static PLACES: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PLACES
        .get_or_init(|| tokio::sync::Semaphore::new(n))
        .acquire()
        .await
        .ok()
}

#[cfg(test)]
mod pace_tests {
    use super::*;

    /// Requests go at once with no bulk job, in an even stream of `bulk_rate` a second while one
    /// runs, and at once again after it.
    #[tokio::test]
    async fn requests_are_paced_only_while_a_bulk_job_runs() {
        let quick = |t: std::time::Instant| t.elapsed() < std::time::Duration::from_millis(20);
        let t = std::time::Instant::now();
        for _ in 0..200 {
            pace().await;
        }
        assert!(quick(t), "paced with no bulk job: {:?}", t.elapsed());
        let job = BulkJob::start();
        let t = std::time::Instant::now();
        for _ in 0..200 {
            pace().await;
        }
        let least = std::time::Duration::from_secs_f64(199.0 / bulk_rate());
        assert!(t.elapsed() >= least, "{:?} < {least:?}", t.elapsed());
        drop(job);
        let t = std::time::Instant::now();
        for _ in 0..200 {
            pace().await;
        }
        assert!(quick(t), "still paced after the job: {:?}", t.elapsed());
    }

    /// While a bulk job runs, `bulk_concurrency` requests are worked on at once; the next waits
    /// until one of them only waits for a commit and gives up its place.
    #[tokio::test]
    async fn a_request_waiting_for_a_commit_gives_its_place_to_the_next() {
        let _job = BulkJob::start();
        let (leave, left) = tokio::sync::watch::channel(false);
        let (end, ended) = tokio::sync::watch::channel(false);
        let mut holders = vec![];
        for k in 0..bulk_concurrency() {
            let (mut left, mut ended) = (left.clone(), ended.clone());
            holders.push(tokio::spawn(paced(async move {
                if k == 0 {
                    let _ = left.wait_for(|v| *v).await;
                    leave_place();
                }
                let _ = ended.wait_for(|v| *v).await;
            })));
        }
        let wait = || tokio::time::sleep(std::time::Duration::from_millis(200));
        wait().await;
        let next = tokio::spawn(paced(async {}));
        wait().await;
        assert!(!next.is_finished(), "a request went in beyond the places");
        leave.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), next)
            .await
            .expect("the place left was not taken")
            .unwrap();
        end.send(true).unwrap();
        for h in holders {
            h.await.unwrap();
        }
    }
}

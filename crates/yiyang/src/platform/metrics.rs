//! What the server counts for its operators (served as Prometheus text by `ops`): requests by route
//! and status with latency histograms, transactions waiting for a connection, the read-audit
//! writer's queue and lag, and the heartbeat of every background loop. Process-wide counters:
//! cheap to bump on every request, read only when scraped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Latency bucket bounds in seconds: the budgets (200 ms reads, 500 ms writes, 2 s worst) fall on
/// bucket edges.
pub const BOUNDS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
];

#[derive(Default, Clone)]
struct Hist {
    buckets: [u64; BOUNDS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Http {
    /// (route, method, status) → count
    requests: BTreeMap<(String, String, u16), u64>,
    /// (route, method) → latency
    latency: BTreeMap<(String, String), Hist>,
}

static HTTP: Mutex<Option<Http>> = Mutex::new(None);

/// One answered request. `route` is the matched route pattern (never a path with ids in it, so
/// the label set stays small).
pub fn observe(route: &str, method: &str, status: u16, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let mut g = HTTP.lock().expect("metrics lock");
    let h = g.get_or_insert_with(Http::default);
    *h.requests
        .entry((route.to_string(), method.to_string(), status))
        .or_default() += 1;
    let l = h
        .latency
        .entry((route.to_string(), method.to_string()))
        .or_default();
    for (i, b) in BOUNDS.iter().enumerate() {
        if secs <= *b {
            l.buckets[i] += 1;
        }
    }
    l.sum += secs;
    l.count += 1;
}

/// Transactions waiting for a pooled connection right now (`Db::begin`).
pub static BEGIN_WAITING: AtomicI64 = AtomicI64::new(0);
/// Read-audit entries handed to the writer and not yet committed.
pub static AUDIT_QUEUED: AtomicI64 = AtomicI64::new(0);
/// How long the oldest entry of the writer's last group waited, in microseconds.
pub static AUDIT_LAG_MICROS: AtomicU64 = AtomicU64::new(0);
pub static AUDIT_GROUPS: AtomicU64 = AtomicU64::new(0);

struct Beat {
    last: Instant,
    every: Duration,
}

static BEATS: Mutex<BTreeMap<&'static str, Beat>> = Mutex::new(BTreeMap::new());

/// A background loop says it is alive and how often it will say so.
pub fn beat(task: &'static str, every: Duration) {
    BEATS.lock().expect("beats lock").insert(
        task,
        Beat {
            last: Instant::now(),
            every,
        },
    );
}

/// Loops that have not beaten for three of their periods plus five minutes (a full rollup
/// rebuild or a long delivery round is not a stall).
pub fn stale_tasks() -> Vec<(&'static str, u64)> {
    BEATS
        .lock()
        .expect("beats lock")
        .iter()
        .filter(|(_, b)| b.last.elapsed() > b.every * 3 + Duration::from_secs(300))
        .map(|(t, b)| (*t, b.last.elapsed().as_secs()))
        .collect()
}

/// Prometheus text exposition, built line by line.
#[derive(Default)]
pub struct Text(String);

impl Text {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.0, "{k}=\"{v}\"");
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
    pub fn finish(self) -> String {
        self.0
    }
}

/// The process-wide families: requests, latency, waiting transactions, the audit writer, loops.
pub fn render_process(t: &mut Text) {
    let http = http_view();
    t.family(
        "yiyang_http_requests_total",
        "counter",
        "Requests answered, by route pattern, method and status.",
    );
    for ((route, method, status), n) in &http.0 {
        t.sample(
            "yiyang_http_requests_total",
            &[
                ("route", route),
                ("method", method),
                ("status", &status.to_string()),
            ],
            *n as f64,
        );
    }
    t.family(
        "yiyang_http_request_duration_seconds",
        "histogram",
        "Time from receiving a request to its answer, by route pattern and method.",
    );
    for ((route, method), h) in &http.1 {
        for (i, b) in BOUNDS.iter().enumerate() {
            t.sample(
                "yiyang_http_request_duration_seconds_bucket",
                &[("route", route), ("method", method), ("le", &b.to_string())],
                h.buckets[i] as f64,
            );
        }
        t.sample(
            "yiyang_http_request_duration_seconds_bucket",
            &[("route", route), ("method", method), ("le", "+Inf")],
            h.count as f64,
        );
        t.sample(
            "yiyang_http_request_duration_seconds_sum",
            &[("route", route), ("method", method)],
            h.sum,
        );
        t.sample(
            "yiyang_http_request_duration_seconds_count",
            &[("route", route), ("method", method)],
            h.count as f64,
        );
    }
    t.family(
        "yiyang_db_transactions_waiting",
        "gauge",
        "Transactions waiting for a database connection (or, on SQLite, for the write lock).",
    );
    t.sample(
        "yiyang_db_transactions_waiting",
        &[],
        BEGIN_WAITING.load(Ordering::Relaxed) as f64,
    );
    t.family(
        "yiyang_audit_read_queue",
        "gauge",
        "Audited reads waiting for the audit writer to commit them.",
    );
    t.sample(
        "yiyang_audit_read_queue",
        &[],
        AUDIT_QUEUED.load(Ordering::Relaxed) as f64,
    );
    t.family(
        "yiyang_audit_writer_lag_seconds",
        "gauge",
        "How long the oldest entry of the audit writer's last group waited before its commit.",
    );
    t.sample(
        "yiyang_audit_writer_lag_seconds",
        &[],
        AUDIT_LAG_MICROS.load(Ordering::Relaxed) as f64 / 1e6,
    );
    t.family(
        "yiyang_audit_writer_groups_total",
        "counter",
        "Groups of audited reads committed.",
    );
    t.sample(
        "yiyang_audit_writer_groups_total",
        &[],
        AUDIT_GROUPS.load(Ordering::Relaxed) as f64,
    );
    t.family(
        "yiyang_bulk_jobs_running",
        "gauge",
        "Imports and eligibility runs writing now (API requests are paced meanwhile).",
    );
    t.sample(
        "yiyang_bulk_jobs_running",
        &[],
        super::bulk_jobs_running() as f64,
    );
    t.family(
        "yiyang_background_task_seconds_since_beat",
        "gauge",
        "Seconds since each background loop last reported alive.",
    );
    for (task, b) in BEATS.lock().expect("beats lock").iter() {
        t.sample(
            "yiyang_background_task_seconds_since_beat",
            &[("task", task)],
            b.last.elapsed().as_secs_f64(),
        );
    }
}

type View = (
    BTreeMap<(String, String, u16), u64>,
    BTreeMap<(String, String), Hist>,
);

/// A copy, so the lock is not held while the text is written.
fn http_view() -> View {
    match &*HTTP.lock().expect("metrics lock") {
        Some(h) => (h.requests.clone(), h.latency.clone()),
        None => Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_labels_escaped() {
        observe("/t/{id}", "GET", 200, Duration::from_millis(30));
        observe("/t/{id}", "GET", 200, Duration::from_millis(300));
        let mut t = Text::default();
        render_process(&mut t);
        t.sample("x", &[("l", "a\"b")], 1.0);
        let s = t.finish();
        assert!(s.contains(
            "yiyang_http_request_duration_seconds_bucket{route=\"/t/{id}\",method=\"GET\",le=\"0.05\"} 1"
        ));
        assert!(s.contains(
            "yiyang_http_request_duration_seconds_bucket{route=\"/t/{id}\",method=\"GET\",le=\"0.5\"} 2"
        ));
        assert!(s.contains("x{l=\"a\\\"b\"} 1"));
    }
}

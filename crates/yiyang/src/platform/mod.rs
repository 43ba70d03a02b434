//! Shared infrastructure every capability uses: database, keys, errors, clock, HTTP plumbing.
pub mod crypto;
pub mod db;
pub mod error;
pub mod migrations;
pub mod outbox;
pub mod web;

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

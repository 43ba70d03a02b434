//! The one integration-test binary: HTTP through the real router (in process), storage on SQLite by
//! default and on PostgreSQL when TEST_DATABASE_URL is set.

mod accounts;
mod admission;
mod assessment;
mod audit_chain;
mod auth;
mod backup;
mod care_visit;
mod catalog;
mod emergency;
mod home_service;
mod hostile;
mod import;
mod indicator;
mod institution;
mod openapi;
mod ops;
mod org;
mod privacy;
mod region;
mod registry;
mod scope_matrix;
mod search;
mod support;
mod workbench;

//! yiyang (颐养): the elderly-care service platform of a civil-affairs bureau.
//! One module per capability; `platform` holds what they share; `app` is the API's table of contents.

pub mod app;
pub mod assessment;
pub mod audit;
pub mod backup;
pub mod care_visit;
pub mod catalog;
pub mod cli;
pub mod demo;
pub mod emergency;
pub mod floor;
pub mod home_service;
pub mod identity;
pub mod indicator;
pub mod institution;
pub mod ops;
pub mod org;
pub mod platform;
pub mod region;
pub mod registry;
pub mod workbench;

//! Pure domain rules of yiyang. Nothing here does I/O, so everything here is unit- and property-tested.

pub mod admission;
pub mod assessment;
pub mod bed_subsidy;
pub mod care_visit;
pub mod citizen_id;
pub mod codes;
pub mod eligibility;
pub mod emergency;
pub mod indicator;
pub mod mask;
pub mod mzt039;
pub mod region_code;
pub mod service_order;
pub mod service_quota;
pub mod staffing;

pub use citizen_id::{CitizenId, CitizenIdError, Sex};
pub use region_code::{RegionCode, RegionCodeError, RegionLevel};

//! assessment — ability assessment to GB/T 42195-2022. The scoring rules are pure and live in the
//! kernel (`yiyang_kernel::assessment`); this module owns the API around them. So far: the public
//! self-check calculator (no login, stores nothing). Assessment records, validity and the
//! reassessment duty come next (issue 3).

pub mod http;

//! Code lists of the registry's status fields: (code, 中文) pairs. The database and the API keep the
//! code; screens, files and eligibility reasons show the Chinese. Shared by the registry (import,
//! validation) and the eligibility rules, which name the same values.

pub const LIVING_STATUS: &[(&str, &str)] = &[
    ("living_alone", "独居"),
    ("empty_nest", "空巢"),
    ("left_behind", "留守"),
    ("with_children", "与子女同住"),
];
pub const ECONOMIC_STATUS: &[(&str, &str)] = &[
    ("extreme_poverty", "特困"),
    ("minimum_living", "低保"),
    ("near_minimum_living", "低保边缘"),
    ("ordinary", "一般"),
];
pub const FAMILY_PLANNING: &[(&str, &str)] = &[
    ("none", "无"),
    ("lost_only_child", "失独"),
    ("disabled_only_child", "伤残"),
];
pub const ELDER_STATUS: &[(&str, &str)] = &[
    ("active", "在册"),
    ("deceased", "已故"),
    ("moved_out", "已迁出"),
];
pub const SEX: &[(&str, &str)] = &[("male", "男"), ("female", "女")];

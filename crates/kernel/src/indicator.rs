//! Indicators (重点指标): the definitions of `domain/indicators.md` as data, their formulas over
//! rollup sums, and the status rules (met / on track / at risk / missed). Pure: the rollups are
//! counted elsewhere; here a formula only reads the measures it names.
//!
//! A *measure* is a count kept per village and period (e.g. `elders_80_assessed`), summed up the
//! region tree. Stock measures are counted on the last day of the period (or today while it runs),
//! so a year's value is its year-end snapshot; later capabilities add flow measures (orders,
//! visits, trainings) under the same names.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

/// Measures counted from the records that exist today (registry, assessments, entitlements).
pub mod measure {
    /// Living residents aged 60 or more on the day.
    pub const ELDERS_60: &str = "elders_60";
    /// Living residents aged 80 or more.
    pub const ELDERS_80: &str = "elders_80";
    /// Of those aged 80+, the ones with a valid assessment (or adopted LTC rating) on the day.
    pub const ELDERS_80_ASSESSED: &str = "elders_80_assessed";
    /// Of those aged 80+, the ones holding the longevity allowance (高龄津贴) on the day.
    pub const ELDERS_80_LONGEVITY: &str = "elders_80_longevity";
    /// Living residents holding at least one granted entitlement of the catalogue on the day.
    pub const ENTITLED: &str = "entitled";
    /// Every registry row of the village, whatever its state (detects people who moved away).
    pub const ROWS: &str = "rows";
    // Counted from the institutions' records (beds, residents, staff), at the home's place.
    /// Residential homes open on the day (养老机构, 敬老院, 区域性/综合养老服务中心).
    pub const INSTITUTIONS: &str = "institutions";
    /// Of those, the ones with a star grade (GB/T 37276) of 二级 or above still in force.
    pub const GRADED_INSTITUTIONS: &str = "graded_institutions";
    /// Beds in use on the day (opened, not retired) in those homes.
    pub const INSTITUTION_BEDS: &str = "institution_beds";
    pub const NURSING_BEDS: &str = "nursing_beds";
    /// Beds of homes run or owned by others than the state (民办, 公建民营).
    pub const SOCIAL_BEDS: &str = "social_beds";
    /// Beds of the homes for the extremely poor (敬老院, 区域性养老服务中心).
    pub const POVERTY_BEDS: &str = "poverty_beds";
    pub const POVERTY_NURSING_BEDS: &str = "poverty_nursing_beds";
    /// Every bed counted for beds per 1,000 elders: the homes' and the family care beds.
    pub const ALL_BEDS: &str = "all_beds";
    /// Family care beds (家庭养老床位) in use on the day, at the elder's home.
    pub const FAMILY_CARE_BEDS_OPEN: &str = "family_care_beds_open";
    /// Family care beds set up within the period (the year, or the month).
    pub const FAMILY_CARE_BEDS_NEW: &str = "family_care_beds";
    /// Beds with a resident on the day.
    pub const OCCUPIED_BEDS: &str = "occupied_beds";
    pub const SOCIAL_WORKERS: &str = "social_workers";
    pub const CAREGIVERS: &str = "caregivers";
    /// Caregivers holding a skill certificate (持证).
    pub const CAREGIVERS_WITH_CERTIFICATE: &str = "caregivers_with_certificate";
    // Counted over the extremely poor (特困), at their place of residence.
    /// 特困 elders who cannot look after themselves (valid assessment, 中度失能 or worse).
    pub const POVERTY_DISABLED: &str = "poverty_disabled";
    /// Of those, the ones living in a state care home on the day.
    pub const POVERTY_DISABLED_IN_FACILITY: &str = "poverty_disabled_in_facility";
    /// 特困 elders who asked for a place (an application not withdrawn) or live in one.
    pub const POVERTY_WILLING: &str = "poverty_willing";
    pub const POVERTY_WILLING_IN_FACILITY: &str = "poverty_willing_in_facility";
    /// Elders with at least one home visit confirmed within the period (居家上门服务), where
    /// they live.
    pub const HOME_SERVED: &str = "home_served";
    /// Confirmed home visits within the period to the elders `home_served` counts, where they
    /// live (the same people, so visits per elder served divides like with like).
    pub const HOME_VISITS: &str = "home_visits";
    /// Of those visits, the ones the family rated (1–5 stars), and the ones rated 4 or 5.
    pub const HOME_VISITS_RATED: &str = "home_visits_rated";
    pub const HOME_VISITS_SATISFIED: &str = "home_visits_satisfied";
    /// Meals served within the period (老年助餐, one meal record each), where the elder lives.
    pub const MEALS: &str = "meals";
    /// Caregivers in post on the day at open organisations that send caregivers to homes, at the
    /// organisation's place (a caregiver has no home region of their own in the records).
    pub const HOME_CAREGIVERS: &str = "home_caregivers";
    /// Elders holding a visit duty (探访任务) on the day, alive then, where they live.
    pub const SPECIAL_DIFFICULTY: &str = "special_difficulty";
    /// Of those, the ones visited within the period up to the day.
    pub const SPECIAL_DIFFICULTY_VISITED: &str = "special_difficulty_visited";
    pub const ALL: &[&str] = &[
        ELDERS_60,
        ELDERS_80,
        ELDERS_80_ASSESSED,
        ELDERS_80_LONGEVITY,
        ENTITLED,
        ROWS,
        INSTITUTIONS,
        GRADED_INSTITUTIONS,
        INSTITUTION_BEDS,
        NURSING_BEDS,
        SOCIAL_BEDS,
        POVERTY_BEDS,
        POVERTY_NURSING_BEDS,
        ALL_BEDS,
        FAMILY_CARE_BEDS_OPEN,
        FAMILY_CARE_BEDS_NEW,
        OCCUPIED_BEDS,
        SOCIAL_WORKERS,
        CAREGIVERS,
        CAREGIVERS_WITH_CERTIFICATE,
        POVERTY_DISABLED,
        POVERTY_DISABLED_IN_FACILITY,
        POVERTY_WILLING,
        POVERTY_WILLING_IN_FACILITY,
        HOME_SERVED,
        HOME_VISITS,
        HOME_VISITS_RATED,
        HOME_VISITS_SATISFIED,
        MEALS,
        HOME_CAREGIVERS,
        SPECIAL_DIFFICULTY,
        SPECIAL_DIFFICULTY_VISITED,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ratio,
    Count,
    PerN,
    Milestone,
    Manual,
}

impl Kind {
    /// The code as the API writes it (the serde name).
    pub fn code(self) -> &'static str {
        match self {
            Kind::Ratio => "ratio",
            Kind::Count => "count",
            Kind::PerN => "per_n",
            Kind::Milestone => "milestone",
            Kind::Manual => "manual",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Ratio,
            Kind::Count,
            Kind::PerN,
            Kind::Milestone,
            Kind::Manual,
        ]
        .into_iter()
        .find(|k| k.code() == s)
    }
    pub fn zh(self) -> &'static str {
        match self {
            Kind::Ratio => "比率",
            Kind::Count => "数量",
            Kind::PerN => "每N单位",
            Kind::Milestone => "里程碑",
            Kind::Manual => "手工填报",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Formula {
    /// numerator / denominator × 100 (percent).
    Ratio {
        num: &'static str,
        den: &'static str,
    },
    /// numerator × n / denominator.
    PerN {
        num: &'static str,
        den: &'static str,
        n: u32,
    },
    /// A count of the period.
    Count { measure: &'static str },
    /// The mean over the months of the period of numerator / denominator (monthly visit rate).
    MeanMonthly {
        num: &'static str,
        den: &'static str,
    },
    /// A value entered by hand with evidence (milestones: 1 = done).
    Entered,
}

/// Where the records behind an indicator come from; `Pending` names the capability that will
/// supply them, so the dashboard can say why there is no actual value yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Records,
    Pending(&'static str),
    Entered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The actual must reach at least the target (≥).
    AtLeast,
    /// The actual must stay at or below the target (≤).
    AtMost,
}

impl Direction {
    pub fn parse(s: &str) -> Option<Direction> {
        match s.trim() {
            "ge" | ">=" | "≥" | "at_least" | "不低于" | "" => Some(Direction::AtLeast),
            "le" | "<=" | "≤" | "at_most" | "不高于" => Some(Direction::AtMost),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Direction::AtLeast => "ge",
            Direction::AtMost => "le",
        }
    }
    pub fn meets(self, actual: f64, target: f64) -> bool {
        // A hundredth of a unit of slack: 99.996% shown as 100.00% meets 100%.
        match self {
            Direction::AtLeast => actual + 0.005 >= target,
            Direction::AtMost => actual - 0.005 <= target,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 约束性: must be met.
    Binding,
    /// 预期性: guidance.
    Expected,
}

impl Class {
    pub fn parse(s: &str) -> Option<Class> {
        match s.trim() {
            "binding" | "约束性" | "约束" => Some(Class::Binding),
            "expected" | "预期性" | "预期" | "" => Some(Class::Expected),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            Class::Binding => "binding",
            Class::Expected => "expected",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Class::Binding => "约束性",
            Class::Expected => "预期性",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Def {
    pub id: &'static str,
    pub name: &'static str,
    /// Other names the plans use for it (target sheets are matched on these too).
    pub aliases: &'static [&'static str],
    pub kind: Kind,
    /// "%", "张", "人次", "户", "个", "" (milestone).
    pub unit: &'static str,
    pub formula: Formula,
    pub source: Source,
    /// Counted over the year (flows) rather than at its end (stocks); shown in the definition.
    pub within_year: bool,
    pub definition: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn def(
    id: &'static str,
    name: &'static str,
    aliases: &'static [&'static str],
    kind: Kind,
    unit: &'static str,
    formula: Formula,
    source: Source,
    definition: &'static str,
) -> Def {
    Def {
        id,
        name,
        aliases,
        kind,
        unit,
        formula,
        source,
        within_year: false,
        definition,
    }
}

const fn flow(mut d: Def) -> Def {
    d.within_year = true;
    d
}

use Formula as F;
use Kind as K;
use Source as S;
use measure as m;

/// The built-in definitions: those of `domain/indicators.md` (computable ones over records that
/// exist today; the others wait for the capability named in `Pending`), two that the catalogue
/// makes computable, and the milestones and hand-entered values the plans carry.
pub static DEFS: &[Def] = &[
    def(
        "assessment_coverage_80",
        "80周岁以上老年人能力综合评估覆盖率",
        &[
            "80周岁及以上老年人能力评估覆盖率",
            "80周岁以上老年人能力评估覆盖率",
            "80周岁及以上老年人能力综合评估覆盖率",
        ],
        K::Ratio,
        "%",
        F::Ratio {
            num: m::ELDERS_80_ASSESSED,
            den: m::ELDERS_80,
        },
        S::Records,
        "期末在世、在册且年满80周岁的老年人中，持有有效能力评估（12个月内，或直接采信的长护险评估）的比例",
    ),
    def(
        "longevity_allowance_coverage",
        "高龄津贴免申即享覆盖率",
        &["高龄津贴覆盖率"],
        K::Ratio,
        "%",
        F::Ratio {
            num: m::ELDERS_80_LONGEVITY,
            den: m::ELDERS_80,
        },
        S::Records,
        "期末在世、在册且年满80周岁的老年人中，正在享受高龄津贴的比例",
    ),
    def(
        "entitled_elders",
        "享受基本养老服务的老年人数",
        &["享受基本养老服务人数"],
        K::Count,
        "人",
        F::Count {
            measure: m::ENTITLED,
        },
        S::Records,
        "期末在世、在册且至少享有一项已批准的基本养老服务项目的老年人数",
    ),
    def(
        "elders_60",
        "60周岁以上老年人数",
        &["60周岁及以上老年人数", "老年人口数"],
        K::Count,
        "人",
        F::Count {
            measure: m::ELDERS_60,
        },
        S::Records,
        "期末在世、在册且年满60周岁的老年人数",
    ),
    def(
        "monthly_visit_rate",
        "特殊困难老年人月探访率",
        &[],
        K::Ratio,
        "%",
        F::MeanMonthly {
            num: m::SPECIAL_DIFFICULTY_VISITED,
            den: m::SPECIAL_DIFFICULTY,
        },
        S::Records,
        "每月：当月至少完成一次探访的特殊困难老年人 / 月末（当月为今日）负有探访任务且在世的特殊困难老年人（探访任务按探访任务规则确定）；年度取12个月平均（并显示最低月份）",
    ),
    flow(def(
        "home_service_share",
        "接受居家上门服务老年人占比",
        &[
            "老年人接受居家上门服务覆盖率",
            "接受居家上门服务老年人覆盖率",
        ],
        K::Ratio,
        "%",
        F::Ratio {
            num: m::HOME_SERVED,
            den: m::ELDERS_60,
        },
        S::Records,
        "期内至少完成一次居家上门服务工单的老年人 / 60周岁以上在册老年人",
    )),
    flow(def(
        "home_visits_per_served",
        "人均上门服务次数",
        &["人均居家上门服务次数"],
        K::PerN,
        "次/人",
        F::PerN {
            num: m::HOME_VISITS,
            den: m::HOME_SERVED,
            n: 1,
        },
        S::Records,
        "期内已确认的居家上门服务工单数 / 期内至少完成一次居家上门服务工单的老年人数（按老年人居住地统计）",
    )),
    flow(def(
        "meals_served",
        "老年助餐服务人次",
        &["助餐服务人次"],
        K::Count,
        "人次",
        F::Count { measure: m::MEALS },
        S::Records,
        "期内助餐点登记的老年人就餐次数，每餐计一人次（按老年人居住地统计）",
    )),
    flow(def(
        "home_service_satisfaction",
        "居家上门服务满意率",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: m::HOME_VISITS_SATISFIED,
            den: m::HOME_VISITS_RATED,
        },
        S::Records,
        "期内已确认且经家属评价的居家上门服务工单中，评价为4星或5星的比例（未评价的不计入）",
    )),
    flow(def(
        "caregivers_per_100_served",
        "每百名服务对象护理员数",
        &[],
        K::PerN,
        "人",
        F::PerN {
            num: m::HOME_CAREGIVERS,
            den: m::HOME_SERVED,
            n: 100,
        },
        S::Records,
        "期末居家上门服务机构在岗养老护理员 × 100 / 期内至少完成一次居家上门服务工单的老年人；护理员按所属服务机构所在区划统计，老年人按居住地统计",
    )),
    def(
        "nursing_bed_share",
        "养老机构护理型床位占比",
        &["护理型床位数占养老机构床位比例", "护理型床位占比"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "nursing_beds",
            den: "institution_beds",
        },
        S::Records,
        "运营中养老机构的护理型床位 / 全部床位（不含家庭养老照护床位）",
    ),
    def(
        "nursing_bed_share_poverty",
        "特困人员供养机构护理型床位占比",
        &["农村特困人员供养服务机构护理型床位占比"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "poverty_nursing_beds",
            den: "poverty_beds",
        },
        S::Records,
        "特困人员供养服务机构的护理型床位 / 全部床位",
    ),
    def(
        "beds_per_1000",
        "每千名老年人拥有养老床位",
        &["每千名老年人拥有养老床位数"],
        K::PerN,
        "张",
        F::PerN {
            num: "all_beds",
            den: m::ELDERS_60,
            n: 1000,
        },
        S::Records,
        "（机构床位 + 家庭养老照护床位 + 社区床位）× 1000 / 60周岁以上在册老年人；目前计入机构床位和家庭养老床位",
    ),
    def(
        "social_beds_share",
        "社会力量举办或经营的养老床位占比",
        &["社会力量举办或经营床位占比"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "social_beds",
            den: "all_beds",
        },
        S::Records,
        "民办或公建民营的床位 / 全部床位",
    ),
    def(
        "graded_institution_share",
        "等级养老机构占比",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: "graded_institutions",
            den: "institutions",
        },
        S::Records,
        "持有二级及以上有效等级的养老机构 / 运营中的养老机构",
    ),
    def(
        "social_workers_per_100_beds",
        "每百张床位社会工作者数",
        &["每百张养老机构床位配备社会工作者数量"],
        K::PerN,
        "人",
        F::PerN {
            num: "social_workers",
            den: "institution_beds",
            n: 100,
        },
        S::Records,
        "养老机构聘用的社会工作者 × 100 / 机构床位",
    ),
    def(
        "bed_occupancy_rate",
        "养老机构床位入住率",
        &["床位入住率"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "occupied_beds",
            den: "institution_beds",
        },
        S::Records,
        "有老人入住的床位 / 运营中养老机构的全部床位",
    ),
    def(
        "certified_caregiver_share",
        "养老护理员持证上岗率",
        &["持证上岗率"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "caregivers_with_certificate",
            den: "caregivers",
        },
        S::Records,
        "在岗养老护理员中持有职业技能等级证书的比例",
    ),
    def(
        "concentrated_support_disabled",
        "失能、失智特困人员集中供养率",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: "poverty_disabled_in_facility",
            den: "poverty_disabled",
        },
        S::Records,
        "入住特困供养机构（敬老院、区域性养老服务中心或公办养老机构）的失能特困老年人 / 全部失能特困老年人（有效评估为中度失能及以上）",
    ),
    def(
        "concentrated_support_willing",
        "有集中供养意愿的特困人员集中供养率",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: "poverty_willing_in_facility",
            den: "poverty_willing",
        },
        S::Records,
        "已入住特困供养机构的特困老年人 / 申请过集中供养（申请未撤回）或已入住的特困老年人",
    ),
    def(
        "facility_quota_compliance",
        "社区养老服务设施配建达标率",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: "compounds_compliant",
            den: "compounds",
        },
        S::Pending("设施规划"),
        "养老服务用房面积达到每百户标准的住宅小区 / 住宅小区",
    ),
    def(
        "street_center_rate",
        "城市街道(综合性)养老服务中心建成率",
        &[
            "城市街道综合性养老服务中心建成率",
            "城市街道养老服务综合体建成率",
        ],
        K::Ratio,
        "%",
        F::Ratio {
            num: "streets_with_center",
            den: "streets",
        },
        S::Pending("设施规划"),
        "建有运营中综合性养老服务中心的城市街道 / 城市街道",
    ),
    def(
        "daycare_coverage",
        "城市社区嵌入式日间照料中心覆盖率",
        &[],
        K::Ratio,
        "%",
        F::Ratio {
            num: "communities_with_daycare",
            den: "communities",
        },
        S::Pending("设施规划"),
        "社区内或服务半径内有日间照料中心的城市社区 / 城市社区",
    ),
    def(
        "service_circle_coverage",
        "15分钟养老服务圈覆盖率",
        &["15分钟居家养老服务圈"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "elders_in_circle",
            den: "elders_located",
        },
        S::Pending("设施规划"),
        "住址步行15分钟（默认直线1000米）内有运营中社区设施的老年人 / 有定位住址的老年人",
    ),
    def(
        "family_doctor_disabled",
        "家庭医生签约服务失能老人覆盖率",
        &["家庭医生签约服务失能(失智)老人覆盖率"],
        K::Ratio,
        "%",
        F::Ratio {
            num: "disabled_with_doctor",
            den: "disabled",
        },
        S::Pending("卫健数据对接"),
        "签约家庭医生的失能老年人 / 失能老年人",
    ),
    flow(def(
        "training_count",
        "养老服务人员培训数(人次)",
        &["养老服务人员培训数"],
        K::Count,
        "人次",
        F::Count {
            measure: "trainings",
        },
        S::Pending("人员培训"),
        "期内完成的培训人次",
    )),
    flow(def(
        "certified_caregivers_new",
        "新增通过职业技能等级认定的养老护理员数",
        &[],
        K::Count,
        "人",
        F::Count {
            measure: "caregivers_certified",
        },
        S::Pending("人员培训"),
        "首次取得职业技能等级认定在期内的养老护理员",
    )),
    flow(def(
        "home_adaptations",
        "居家适老化改造户数",
        &[],
        K::Count,
        "户",
        F::Count {
            measure: "adaptations",
        },
        S::Pending("居家适老化改造"),
        "期内完成并验收的居家适老化改造户数",
    )),
    flow(def(
        "family_care_beds_new",
        "新增家庭养老照护床位",
        &["新增家庭养老照护床位数"],
        K::Count,
        "张",
        F::Count {
            measure: "family_care_beds",
        },
        S::Records,
        "期内新设的家庭养老照护床位",
    )),
    def(
        "lottery_fund_share",
        "彩票公益金用于养老服务占比",
        &[],
        K::Manual,
        "%",
        F::Entered,
        S::Entered,
        "用于养老服务的福利彩票公益金 / 本级福利彩票公益金（财政数据，手工填报并附依据）",
    ),
    def(
        "facility_plan_compiled",
        "养老服务设施专项规划编制",
        &[],
        K::Milestone,
        "",
        F::Entered,
        S::Entered,
        "专项规划编制完成（里程碑，附批复文件）",
    ),
];

pub fn find(id: &str) -> Option<&'static Def> {
    DEFS.iter().find(|d| d.id == id)
}

/// Match a name as a plan's table writes it (spaces, full-width brackets and a trailing "(%)" ignored).
pub fn find_by_name(name: &str) -> Option<&'static Def> {
    let n = normalize_name(name);
    DEFS.iter().find(|d| {
        d.id == name.trim()
            || normalize_name(d.name) == n
            || d.aliases.iter().any(|a| normalize_name(a) == n)
    })
}

pub fn normalize_name(s: &str) -> String {
    let mut t: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '（' => '(',
            '）' => ')',
            '、' => ',',
            '，' => ',',
            _ => c,
        })
        .collect();
    for suffix in ["(%)", "%"] {
        if let Some(x) = t.strip_suffix(suffix) {
            t = x.to_string();
        }
    }
    t
}

/// The measures of one node for one period.
pub trait Sums {
    fn get(&self, measure: &str) -> Option<i64>;
}

impl Sums for std::collections::BTreeMap<String, i64> {
    fn get(&self, measure: &str) -> Option<i64> {
        std::collections::BTreeMap::get(self, measure).copied()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Value {
    pub value: Option<f64>,
    pub numerator: Option<f64>,
    pub denominator: Option<f64>,
}

/// The value of a computable formula from one period's sums (None where a measure is missing or
/// the denominator is zero). `MeanMonthly` takes the months instead: see [`mean_monthly`].
pub fn compute(f: &Formula, sums: &dyn Sums) -> Value {
    let get = |k: &str| sums.get(k).map(|v| v as f64);
    match *f {
        F::Ratio { num, den } | F::MeanMonthly { num, den } => ratio(get(num), get(den), 100.0),
        F::PerN { num, den, n } => ratio(get(num), get(den), n as f64),
        F::Count { measure } => Value {
            value: get(measure),
            numerator: get(measure),
            denominator: None,
        },
        F::Entered => Value::default(),
    }
}

fn ratio(num: Option<f64>, den: Option<f64>, scale: f64) -> Value {
    let value = match (num, den) {
        (Some(n), Some(d)) if d > 0.0 => Some(n * scale / d),
        _ => None,
    };
    Value {
        value,
        numerator: num,
        denominator: den,
    }
}

/// Mean of the monthly ratios over the months that have a denominator, and the worst month.
pub fn mean_monthly(num: &str, den: &str, months: &[&dyn Sums]) -> (Value, Option<usize>) {
    let mut vals = vec![];
    for (i, s) in months.iter().enumerate() {
        if let Some(v) = ratio(
            s.get(num).map(|v| v as f64),
            s.get(den).map(|v| v as f64),
            100.0,
        )
        .value
        {
            vals.push((i, v));
        }
    }
    if vals.is_empty() {
        return (Value::default(), None);
    }
    let mean = vals.iter().map(|v| v.1).sum::<f64>() / vals.len() as f64;
    let worst = vals.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|v| v.0);
    (
        Value {
            value: Some(mean),
            numerator: None,
            denominator: None,
        },
        worst,
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 已达标
    Met,
    /// 进行中，按趋势可达标
    OnTrack,
    /// 有风险：按趋势年底达不到
    AtRisk,
    /// 未达标（年度已结束）
    Missed,
    /// 无目标
    NoTarget,
    /// 暂无数据
    NoData,
    /// 尚未开始的年度
    NotStarted,
}

impl Status {
    /// The code as the API writes it (the serde name).
    pub fn code(self) -> &'static str {
        match self {
            Status::Met => "met",
            Status::OnTrack => "on_track",
            Status::AtRisk => "at_risk",
            Status::Missed => "missed",
            Status::NoTarget => "no_target",
            Status::NoData => "no_data",
            Status::NotStarted => "not_started",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Status::Met => "已达标",
            Status::OnTrack => "进行中",
            Status::AtRisk => "有风险",
            Status::Missed => "未达标",
            Status::NoTarget => "无目标",
            Status::NoData => "暂无数据",
            Status::NotStarted => "未开始",
        }
    }
}

/// The status of a year's target on `today`.
///
/// - A finished year: met or missed by its value.
/// - The running year: met once the value meets the target; otherwise the monthly series
///   (month 1..=12, values so far) is projected to December by a least-squares line — on track if
///   the projection meets the target, at risk if not (also when there are too few months to draw
///   a line: one month tells nothing about the trend, so it is not taken as a promise).
/// - A year to come: not started.
pub fn status(
    year: i32,
    today: NaiveDate,
    target: Option<(f64, Direction)>,
    actual: Option<f64>,
    monthly: &[(u32, f64)],
) -> Status {
    if year > today.year() {
        return Status::NotStarted;
    }
    let Some((t, dir)) = target else {
        return Status::NoTarget;
    };
    let Some(a) = actual else {
        return Status::NoData;
    };
    if year < today.year() {
        return if dir.meets(a, t) {
            Status::Met
        } else {
            Status::Missed
        };
    }
    if dir.meets(a, t) {
        return Status::Met;
    }
    match project(monthly, 12) {
        Some(p) if dir.meets(p, t) => Status::OnTrack,
        _ => Status::AtRisk,
    }
}

/// Least-squares line through (month, value), read at `month` (None with fewer than two months).
pub fn project(points: &[(u32, f64)], month: u32) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 as f64 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 as f64 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some(my + slope * (month as f64 - mx))
}

/// A period as the API writes it: a year "2025" or a month "2025-03".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    pub year: i32,
    /// None = the whole year.
    pub month: Option<u32>,
}

impl Period {
    pub fn parse(s: &str) -> Result<Period, String> {
        let s = s.trim();
        let bad = || format!("期间“{s}”格式不正确，应为 YYYY 或 YYYY-MM");
        let (y, m) = match s.split_once('-') {
            Some((y, m)) => (y, Some(m)),
            None => (s, None),
        };
        if y.len() != 4 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        if !(1990..=2100).contains(&year) {
            return Err(format!("年份 {year} 超出范围（1990–2100）"));
        }
        let month = match m {
            None => None,
            Some(m) => {
                let v: u32 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&v) || m.len() != 2 {
                    return Err(bad());
                }
                Some(v)
            }
        };
        Ok(Period { year, month })
    }
    pub fn key(&self) -> String {
        match self.month {
            None => format!("{}", self.year),
            Some(m) => format!("{}-{m:02}", self.year),
        }
    }
    /// The last day of the period.
    pub fn end(&self) -> NaiveDate {
        match self.month {
            None => NaiveDate::from_ymd_opt(self.year, 12, 31).expect("valid"),
            Some(m) => {
                let first_next = if m == 12 {
                    NaiveDate::from_ymd_opt(self.year + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(self.year, m + 1, 1)
                };
                first_next.expect("valid").pred_opt().expect("valid")
            }
        }
    }
    /// The day stock measures are counted on: the period's end, or today while it runs; None for
    /// a period that has not begun.
    pub fn snapshot_day(&self, today: NaiveDate) -> Option<NaiveDate> {
        let start = match self.month {
            None => NaiveDate::from_ymd_opt(self.year, 1, 1),
            Some(m) => NaiveDate::from_ymd_opt(self.year, m, 1),
        }
        .expect("valid");
        if start > today {
            None
        } else {
            Some(self.end().min(today))
        }
    }
    /// The year and each of its months that have begun by `today`.
    pub fn year_and_months(year: i32, today: NaiveDate) -> Vec<Period> {
        let mut v = vec![Period { year, month: None }];
        for m in 1..=12 {
            let p = Period {
                year,
                month: Some(m),
            };
            if p.snapshot_day(today).is_some() {
                v.push(p);
            }
        }
        v
    }
}

/// Parse a target as the plans write it: "50%", "50", "1000", "≥40", "done"/"完成"/"建成" (1 for
/// milestones). The direction written in the cell (≥ / ≤), if any, comes back too.
pub fn parse_target(cell: &str, def: Option<&Def>) -> Result<(f64, Option<Direction>), String> {
    let s = cell.trim();
    if s.is_empty() {
        return Err("目标值为空".into());
    }
    if matches!(
        s,
        "done" | "completed" | "完成" | "已完成" | "建成" | "编制完成" | "全覆盖"
    ) {
        return Ok((
            if def.is_some_and(|d| d.unit == "%") {
                100.0
            } else {
                1.0
            },
            None,
        ));
    }
    let (dir, rest) = if let Some(r) = s.strip_prefix('≥').or_else(|| s.strip_prefix(">=")) {
        (Some(Direction::AtLeast), r)
    } else if let Some(r) = s.strip_prefix('≤').or_else(|| s.strip_prefix("<=")) {
        (Some(Direction::AtMost), r)
    } else {
        (None, s)
    };
    let num = rest
        .trim()
        .trim_end_matches(['%', '％'])
        .trim()
        .replace(',', "");
    let v: f64 = num
        .parse()
        .map_err(|_| format!("目标值“{s}”不是数字（可写 50%、1000、≥40 或 完成）"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("目标值“{s}”应为非负数"));
    }
    if def.is_some_and(|d| d.unit == "%") && v > 100.0 {
        return Err(format!("比率目标“{s}”不能超过 100%"));
    }
    Ok((v, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn sums(kv: &[(&str, i64)]) -> BTreeMap<String, i64> {
        kv.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn definitions_are_unique_and_findable() {
        let mut ids: Vec<_> = DEFS.iter().map(|d| d.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), DEFS.len());
        assert_eq!(
            find_by_name("80周岁及以上老年人能力评估覆盖率").unwrap().id,
            "assessment_coverage_80"
        );
        assert_eq!(
            find_by_name(" 老年人接受居家上门服务覆盖率（%） ")
                .unwrap()
                .id,
            "home_service_share"
        );
        assert_eq!(
            find_by_name("护理型床位数占养老机构床位比例").unwrap().id,
            "nursing_bed_share"
        );
        assert!(find_by_name("不存在的指标").is_none());
        // Every computable formula names measures; entered ones have no formula.
        for d in DEFS {
            assert_eq!(
                d.formula == F::Entered,
                matches!(d.kind, K::Manual | K::Milestone)
            );
        }
    }

    #[test]
    fn formulas() {
        let s = sums(&[
            ("elders_80", 400),
            ("elders_80_assessed", 300),
            ("elders_60", 2000),
        ]);
        let v = compute(&find("assessment_coverage_80").unwrap().formula, &s);
        assert_eq!(v.value, Some(75.0));
        assert_eq!((v.numerator, v.denominator), (Some(300.0), Some(400.0)));
        let v = compute(
            &F::PerN {
                num: "elders_80",
                den: "elders_60",
                n: 1000,
            },
            &s,
        );
        assert_eq!(v.value, Some(200.0));
        // No denominator: no value, never a division by zero.
        let v = compute(&find("assessment_coverage_80").unwrap().formula, &sums(&[]));
        assert_eq!(v.value, None);
        let v = compute(
            &find("assessment_coverage_80").unwrap().formula,
            &sums(&[("elders_80", 0), ("elders_80_assessed", 0)]),
        );
        assert_eq!(v.value, None);
        let v = compute(&find("elders_60").unwrap().formula, &s);
        assert_eq!(v.value, Some(2000.0));
        // Visits per elder served (×1) and caregivers per 100 elders served.
        let h = sums(&[
            ("home_served", 8),
            ("home_visits", 20),
            ("home_caregivers", 2),
        ]);
        let v = compute(&find("home_visits_per_served").unwrap().formula, &h);
        assert_eq!(v.value, Some(2.5));
        let v = compute(&find("caregivers_per_100_served").unwrap().formula, &h);
        assert_eq!(v.value, Some(25.0));
    }

    #[test]
    fn monthly_mean_and_worst_month() {
        let a = sums(&[("n", 8), ("d", 10)]);
        let b = sums(&[("n", 10), ("d", 10)]);
        let c = sums(&[("n", 0), ("d", 0)]);
        let (v, worst) = mean_monthly("n", "d", &[&a, &b, &c]);
        assert_eq!(v.value, Some(90.0));
        assert_eq!(worst, Some(0));
    }

    #[test]
    fn status_rules() {
        let today = d("2025-06-15");
        let ge = Some((80.0, Direction::AtLeast));
        // Finished years.
        assert_eq!(status(2024, today, ge, Some(80.0), &[]), Status::Met);
        assert_eq!(status(2024, today, ge, Some(79.9), &[]), Status::Missed);
        assert_eq!(status(2026, today, ge, Some(90.0), &[]), Status::NotStarted);
        assert_eq!(status(2024, today, None, Some(1.0), &[]), Status::NoTarget);
        assert_eq!(status(2024, today, ge, None, &[]), Status::NoData);
        // Running year: rising 10 points a month from 20 reaches 130 by December: on track.
        let rising: Vec<_> = (1..=6).map(|m| (m, 10.0 + 10.0 * m as f64)).collect();
        assert_eq!(
            status(2025, today, ge, Some(70.0), &rising),
            Status::OnTrack
        );
        // Flat at 50: at risk.
        let flat: Vec<_> = (1..=6).map(|m| (m, 50.0)).collect();
        assert_eq!(status(2025, today, ge, Some(50.0), &flat), Status::AtRisk);
        // Already there: met.
        assert_eq!(status(2025, today, ge, Some(85.0), &flat), Status::Met);
        // One month: no trend, at risk.
        assert_eq!(
            status(2025, today, ge, Some(50.0), &[(1, 50.0)]),
            Status::AtRisk
        );
        // ≤ targets.
        let le = Some((5.0, Direction::AtMost));
        assert_eq!(status(2024, today, le, Some(4.0), &[]), Status::Met);
        assert_eq!(status(2024, today, le, Some(6.0), &[]), Status::Missed);
        // Display rounding: 99.996 meets 100.
        assert_eq!(
            status(
                2024,
                today,
                Some((100.0, Direction::AtLeast)),
                Some(99.996),
                &[]
            ),
            Status::Met
        );
    }

    #[test]
    fn codes_are_the_serde_names() {
        for k in [K::Ratio, K::Count, K::PerN, K::Milestone, K::Manual] {
            assert_eq!(serde_json::to_value(k).unwrap(), k.code());
            assert_eq!(Kind::parse(k.code()), Some(k));
        }
        for s in [
            Status::Met,
            Status::OnTrack,
            Status::AtRisk,
            Status::Missed,
            Status::NoTarget,
            Status::NoData,
            Status::NotStarted,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.code());
        }
    }

    #[test]
    fn projection() {
        assert_eq!(project(&[(1, 10.0), (2, 20.0)], 12), Some(120.0));
        assert_eq!(project(&[(1, 10.0)], 12), None);
    }

    #[test]
    fn periods() {
        let p = Period::parse("2024-02").unwrap();
        assert_eq!(p.end(), d("2024-02-29"));
        assert_eq!(p.key(), "2024-02");
        assert_eq!(Period::parse("2025").unwrap().end(), d("2025-12-31"));
        for bad in ["25", "2025-13", "2025-1", "abcd", "2025-00", "1800"] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
        let today = d("2025-03-10");
        assert_eq!(
            Period::parse("2025").unwrap().snapshot_day(today),
            Some(today)
        );
        assert_eq!(
            Period::parse("2025-02").unwrap().snapshot_day(today),
            Some(d("2025-02-28"))
        );
        assert_eq!(Period::parse("2025-04").unwrap().snapshot_day(today), None);
        assert_eq!(Period::year_and_months(2025, today).len(), 4);
        assert_eq!(Period::year_and_months(2024, today).len(), 13);
    }

    #[test]
    fn targets_as_plans_write_them() {
        let pct = find("assessment_coverage_80");
        assert_eq!(parse_target("50%", pct).unwrap(), (50.0, None));
        assert_eq!(
            parse_target("≥40", find("beds_per_1000")).unwrap(),
            (40.0, Some(Direction::AtLeast))
        );
        assert_eq!(parse_target("1,000", None).unwrap(), (1000.0, None));
        assert_eq!(
            parse_target("completed", find("service_circle_coverage"))
                .unwrap()
                .0,
            100.0
        );
        assert_eq!(
            parse_target("done", find("facility_plan_compiled"))
                .unwrap()
                .0,
            1.0
        );
        assert!(parse_target("120%", pct).is_err());
        assert!(parse_target("很多", None).is_err());
        assert!(parse_target("", None).is_err());
    }
}

//! Ability assessment to the legacy MZ/T 039-2013 《老年人能力评估》 (`domain/assessment.md` §2): the
//! 22 items of Appendix B as data, validation, the domain grades (分级), the initial level from the
//! four grades, the level-change clauses and the final level (0–3). Pure: no I/O. Results are not
//! convertible to GB/T 42195-2022; this engine exists to read and re-score records of local
//! systems that still run the old standard.

use crate::assessment::{OptionDef, RiskCountMode, RiskEvents};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const STANDARD: &str = "MZ/T 039-2013";

/// The four primary indicators (一级指标), in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    Adl,
    Mental,
    SensoryCommunication,
    SocialParticipation,
}

impl Domain {
    pub const ALL: [Domain; 4] = [
        Domain::Adl,
        Domain::Mental,
        Domain::SensoryCommunication,
        Domain::SocialParticipation,
    ];
    pub fn zh(self) -> &'static str {
        match self {
            Domain::Adl => "日常生活活动",
            Domain::Mental => "精神状态",
            Domain::SensoryCommunication => "感知觉与沟通",
            Domain::SocialParticipation => "社会参与",
        }
    }
    /// Only ADL scores "higher = better"; the other three count impairment (§2.7).
    pub fn higher_is_better(self) -> bool {
        self == Domain::Adl
    }
    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ItemDef {
    pub code: &'static str,
    pub domain: Domain,
    pub name: &'static str,
    pub options: &'static [OptionDef],
}

impl ItemDef {
    pub fn max(&self) -> u8 {
        self.options.iter().map(|o| o.score).max().unwrap_or(0)
    }
    pub fn allows(&self, score: u8) -> bool {
        self.options.iter().any(|o| o.score == score)
    }
    /// The next allowed score one step towards "better" (towards 100 for ADL, towards 0 elsewhere).
    pub fn better(&self, score: u8) -> Option<u8> {
        let scores = self.options.iter().map(|o| o.score);
        if self.domain.higher_is_better() {
            scores.filter(|s| *s > score).min()
        } else {
            scores.filter(|s| *s < score).max()
        }
    }
}

const fn o(code: &'static str, score: u8, label: &'static str) -> OptionDef {
    OptionDef { code, score, label }
}

const fn item(
    code: &'static str,
    domain: Domain,
    name: &'static str,
    options: &'static [OptionDef],
) -> ItemDef {
    ItemDef {
        code,
        domain,
        name,
        options,
    }
}

/// B.1 options with three steps share their wording apart from the best one.
const ADL_10_5_0: &[OptionDef] = &[
    o("10", 10, "可独立完成"),
    o("5", 5, "需部分帮助"),
    o("0", 0, "需极大帮助或完全依赖他人"),
];

const HELP_5_0: &[OptionDef] = &[o("5", 5, "可自己独立完成"), o("0", 0, "需他人帮助")];

use Domain::*;

/// Item code of 意识水平; 3 is coma (变更条款 3).
pub const CONSCIOUSNESS: &str = "B3.1";
/// Item code of 认知功能; 2 is "already diagnosed cognitive impairment".
pub const COGNITION: &str = "B2.1";
const COMA: u8 = 3;

/// Appendix B, 22 items in the order of the standard. Option labels are short plain-Chinese
/// paraphrases; ADL lists the best option first, the other domains list 0 (no impairment) first.
pub const ITEMS: [ItemDef; 22] = [
    item(
        "B1.1",
        Adl,
        "进食",
        &[
            o("10", 10, "可独立进食（在合理时间内独立进食准备好的食物）"),
            o(
                "5",
                5,
                "需部分帮助（进食过程中需要一定帮助，如协助把持餐具）",
            ),
            o("0", 0, "需极大帮助或完全依赖他人，或有留置营养管"),
        ],
    ),
    item(
        "B1.2",
        Adl,
        "洗澡",
        &[
            o("5", 5, "准备好洗澡水后，可自己独立完成洗澡过程"),
            o("0", 0, "在洗澡过程中需他人帮助"),
        ],
    ),
    item("B1.3", Adl, "修饰", HELP_5_0),
    item(
        "B1.4",
        Adl,
        "穿衣",
        &[
            o("10", 10, "可独立完成（含穿脱鞋、系鞋带）"),
            o(
                "5",
                5,
                "需部分帮助（能自己穿脱，但需他人帮助整理衣物、系扣/鞋带、拉拉链）",
            ),
            o("0", 0, "需极大帮助或完全依赖他人"),
        ],
    ),
    item(
        "B1.5",
        Adl,
        "大便控制",
        &[
            o("10", 10, "可控制大便"),
            o("5", 5, "偶尔失控（每周少于1次），或需要他人提示"),
            o("0", 0, "完全失控"),
        ],
    ),
    item(
        "B1.6",
        Adl,
        "小便控制",
        &[
            o("10", 10, "可控制小便"),
            o(
                "5",
                5,
                "偶尔失控（每天少于1次，但每周多于1次），或需要他人提示",
            ),
            o("0", 0, "完全失控，或留置导尿管"),
        ],
    ),
    item("B1.7", Adl, "如厕", ADL_10_5_0),
    item(
        "B1.8",
        Adl,
        "床椅转移",
        &[
            o("15", 15, "可独立完成"),
            o("10", 10, "需部分帮助（需他人搀扶或使用拐杖）"),
            o("5", 5, "需极大帮助（较大程度上依赖他人搀扶和帮助）"),
            o("0", 0, "完全依赖他人"),
        ],
    ),
    item(
        "B1.9",
        Adl,
        "平地行走",
        &[
            o("15", 15, "可独立在平地上行走45米"),
            o(
                "10",
                10,
                "需部分帮助（需他人搀扶，或使用拐杖、助行器等辅具）",
            ),
            o(
                "5",
                5,
                "需极大帮助（较大程度上依赖他人搀扶，或坐在轮椅上自行移动）",
            ),
            o("0", 0, "完全依赖他人"),
        ],
    ),
    item(
        "B1.10",
        Adl,
        "上下楼梯",
        &[
            o("10", 10, "可独立上下楼梯（连续上下10–15个台阶）"),
            o("5", 5, "需部分帮助（需扶楼梯、他人搀扶，或使用拐杖等）"),
            o("0", 0, "需极大帮助或完全依赖他人"),
        ],
    ),
    item(
        "B2.1",
        Mental,
        "认知功能",
        &[
            o("0", 0, "画钟正确，且能回忆出2–3个词"),
            o("1", 1, "画钟错误，或只回忆出0–1个词"),
            o("2", 2, "已确诊为认知障碍，如老年痴呆"),
        ],
    ),
    item(
        "B2.2",
        Mental,
        "攻击行为",
        &[
            o("0", 0, "无身体攻击行为和语言攻击行为"),
            o("1", 1, "每月有几次身体攻击行为，或每周有几次语言攻击行为"),
            o("2", 2, "每周有几次身体攻击行为，或每日有语言攻击行为"),
        ],
    ),
    item(
        "B2.3",
        Mental,
        "抑郁症状",
        &[
            o("0", 0, "无"),
            o("1", 1, "情绪低落、不爱说话、不爱梳洗、不爱活动"),
            o("2", 2, "有自杀念头或自杀行为"),
        ],
    ),
    item(
        "B3.1",
        SensoryCommunication,
        "意识水平",
        &[
            o("0", 0, "神志清醒，对周围环境警觉"),
            o("1", 1, "嗜睡，呼唤或推动肢体可唤醒，停止刺激后又继续入睡"),
            o("2", 2, "昏睡，强烈刺激下可短时清醒，刺激减弱后很快又入睡"),
            o("3", 3, "昏迷（直接评定为重度失能，可不进行以下项目的评估）"),
        ],
    ),
    item(
        "B3.2",
        SensoryCommunication,
        "视力",
        &[
            o("0", 0, "能看清书报上的标准字体"),
            o("1", 1, "能看清大字体，但看不清书报上的标准字体"),
            o("2", 2, "视力有限，看不清报纸大标题，但能辨认物体"),
            o(
                "3",
                3,
                "辨认物体有困难，但眼睛能跟随物体移动，只能看到光、颜色和形状",
            ),
            o("4", 4, "没有视力，眼睛不能跟随物体移动"),
        ],
    ),
    item(
        "B3.3",
        SensoryCommunication,
        "听力",
        &[
            o("0", 0, "可正常交谈，能听到电视、电话、门铃的声音"),
            o("1", 1, "轻声说话或说话距离超过2米时听不清"),
            o("2", 2, "正常交流有些困难，需在安静环境或大声说话才能听到"),
            o("3", 3, "讲话者大声说话或说话很慢，才能部分听见"),
            o("4", 4, "完全听不见"),
        ],
    ),
    item(
        "B3.4",
        SensoryCommunication,
        "沟通交流",
        &[
            o("0", 0, "无困难，能与他人正常沟通和交流"),
            o("1", 1, "能表达需要、理解别人的话，但需要增加时间或给予帮助"),
            o("2", 2, "表达需要或理解有困难，需频繁重复或简化口头表达"),
            o("3", 3, "不能表达需要或理解他人的话"),
        ],
    ),
    item(
        "B4.1",
        SocialParticipation,
        "生活能力",
        &[
            o("0", 0, "除个人生活自理外，能料理家务或当家管理事务"),
            o(
                "1",
                1,
                "除个人生活自理外，能做家务，但欠好，家庭事务安排欠条理",
            ),
            o(
                "2",
                2,
                "个人生活能自理；只有在他人帮助下才能做些家务，但质量不好",
            ),
            o("3", 3, "个人基本生活事务能自理，在督促下可洗漱"),
            o("4", 4, "个人基本生活事务需要部分帮助或完全依赖他人帮助"),
        ],
    ),
    item(
        "B4.2",
        SocialParticipation,
        "工作能力",
        &[
            o("0", 0, "原来熟练的脑力工作或体力技巧性工作可照常进行"),
            o("1", 1, "原来熟练的工作能力有所下降"),
            o("2", 2, "原来熟练的工作明显不如以往，部分遗忘"),
            o("3", 3, "对熟练工作只有一些片段保留，技能全部遗忘"),
            o("4", 4, "对以往的知识或技能全部磨灭"),
        ],
    ),
    item(
        "B4.3",
        SocialParticipation,
        "时间/空间定向",
        &[
            o("0", 0, "时间观念清楚；可单独出远门，能很快掌握新环境的方位"),
            o("1", 1, "时间观念有些下降；可单独来往于近街，但不知回家路线"),
            o(
                "2",
                2,
                "时间观念较差，只知上半年或下半年；只能在家附近单独行动",
            ),
            o("3", 3, "时间观念很差，只知上午或下午；只能在左邻右舍间串门"),
            o("4", 4, "无时间观念；不能单独外出"),
        ],
    ),
    item(
        "B4.4",
        SocialParticipation,
        "人物定向",
        &[
            o(
                "0",
                0,
                "知道周围人们的关系和称谓的意义，可分辨陌生人的大致年龄和身份",
            ),
            o("1", 1, "只知家中亲密近亲的关系，不会分辨陌生人的大致年龄"),
            o(
                "2",
                2,
                "只能称呼家中人，或只能照样称呼，不知其关系，不辨辈分",
            ),
            o("3", 3, "只认识常同住的亲人，可辨熟人和生人"),
            o("4", 4, "只认识保护人，不辨熟人和生人"),
        ],
    ),
    item(
        "B4.5",
        SocialParticipation,
        "社会交往能力",
        &[
            o("0", 0, "参与社会，在社会环境中有一定适应能力，待人接物恰当"),
            o(
                "1",
                1,
                "能适应单纯环境，主动接触人，初见面时难让人发现智力问题，不能理解隐喻语",
            ),
            o(
                "2",
                2,
                "脱离社会，可被动接触，不会主动待人，谈话中很多不适词句，容易上当受骗",
            ),
            o("3", 3, "勉强可与人交往，谈吐内容不清楚，表情不恰当"),
            o("4", 4, "难以与人接触"),
        ],
    ),
];

pub const LEVEL_NAMES: [&str; 4] = ["能力完好", "轻度失能", "中度失能", "重度失能"];
/// Names of the domain grades (分级); a domain is 受损, only the person is 失能.
pub const GRADE_NAMES: [&str; 4] = ["能力完好", "轻度受损", "中度受损", "重度受损"];

pub fn item_def(code: &str) -> Option<&'static ItemDef> {
    ITEMS.iter().find(|i| i.code == code)
}

/// §2.3 ADL grade from the sum (0–100). Sums are multiples of 5, so 65–95 is every value in 65..100.
pub fn adl_grade(sum: u8) -> u8 {
    match sum {
        100.. => 0,
        65..=99 => 1,
        45..=64 => 2,
        _ => 3,
    }
}

/// §2.3 mental-state grade from the sum (0–6).
pub fn mental_grade(sum: u8) -> u8 {
    match sum {
        0 => 0,
        1 => 1,
        2..=3 => 2,
        _ => 3,
    }
}

/// §2.3 social-participation grade from the sum (0–20).
pub fn social_grade(sum: u8) -> u8 {
    match sum {
        0..=2 => 0,
        3..=7 => 1,
        8..=13 => 2,
        _ => 3,
    }
}

/// §2.3 sensory/communication grade by rule, most severe first. Consciousness: 0 clear,
/// 1 drowsy, 2 stupor, 3 coma.
pub fn sensory_grade(consciousness: u8, vision: u8, hearing: u8, communication: u8) -> u8 {
    let (c, v, h, k) = (consciousness, vision, hearing, communication);
    if c >= 2 || v >= 4 || h >= 4 || k >= 3 {
        3
    } else if c == 1 || v == 3 || h == 3 || k == 2 {
        2
    } else if v == 2 || h == 2 || k == 1 {
        1
    } else {
        0
    }
}

/// How to read the overlap of the written rule at A = 1 with one domain at 3 and another at 0/1
/// (§2.4 CONFLICT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReading {
    /// The 中度 sentence ("any one is 3") wins: level 2 (recommended, default).
    #[default]
    Moderate,
    /// The 轻度 sentence is checked first, as one public implementation does: level 1.
    Mild,
}

/// §2.4 initial level (初步等级) from the ADL, mental, sensory and social grades, most severe first.
/// Grades above 3 count as 3.
pub fn mzt_initial(a: u8, m: u8, s: u8, p: u8, conflict: ConflictReading) -> u8 {
    let (a, m, s, p) = (a.min(3), m.min(3), s.min(3), p.min(3));
    let all_2 = m == 2 && s == 2 && p == 2;
    let any_3 = m == 3 || s == 3 || p == 3;
    let any_0_or_1 = m <= 1 || s <= 1 || p <= 1;
    match a {
        3 => 3,
        2 if any_3 || all_2 => 3,
        // Gap-fill: (0,0,0) and "three of {1,2}, not all 2" are not covered by the words.
        2 => 2,
        1 if conflict == ConflictReading::Mild && any_0_or_1 => 1,
        1 if all_2 || any_3 => 2,
        1 => 1,
        _ if m == 0 && s == 0 && p <= 1 => 0,
        // a == 0; also the gap-fill for M = S = 0, P = 3.
        _ => 1,
    }
}

/// 痴呆 in the basic-information table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dementia {
    #[default]
    None,
    Mild,
    Moderate,
    Severe,
}

impl Dementia {
    pub fn zh(self) -> &'static str {
        match self {
            Dementia::None => "无",
            Dementia::Mild => "轻度",
            Dementia::Moderate => "中度",
            Dementia::Severe => "重度",
        }
    }
}

/// 精神疾病 in the basic-information table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MentalIllness {
    #[default]
    None,
    Schizophrenia,
    BipolarDisorder,
    ParanoidDisorder,
    SchizoaffectiveDisorder,
    EpilepsyRelated,
    IntellectualDisabilityRelated,
}

impl MentalIllness {
    pub fn zh(self) -> &'static str {
        match self {
            MentalIllness::None => "无",
            MentalIllness::Schizophrenia => "精神分裂症",
            MentalIllness::BipolarDisorder => "双相情感障碍",
            MentalIllness::ParanoidDisorder => "偏执性精神障碍",
            MentalIllness::SchizoaffectiveDisorder => "分裂情感性障碍",
            MentalIllness::EpilepsyRelated => "癫痫所致精神障碍",
            MentalIllness::IntellectualDisabilityRelated => "精神发育迟滞伴发精神障碍",
        }
    }
}

/// The open points of §2.4–2.5, stored with every result. Stacking, event counting and the coma
/// policy mean the same as in [`crate::assessment::Config`]; its `coma_level` has no counterpart
/// because MZ/T always rates a coma 重度失能 (3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub conflict: ConflictReading,
    /// Clauses 1 and 2 both hit: one level up (false, default) or two.
    pub stack_adjustments: bool,
    pub risk_count_mode: RiskCountMode,
    /// In a coma the items after 意识水平 may be left out, as the B.3.1 note allows.
    pub allow_incomplete_when_coma: bool,
    /// Count 认知功能 = 2 ("already diagnosed") as clause 1, as some systems do (default false).
    pub cognition_diagnosed_is_clause_1: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            conflict: ConflictReading::Moderate,
            stack_adjustments: false,
            risk_count_mode: RiskCountMode::Total,
            allow_incomplete_when_coma: true,
            cognition_diagnosed_is_clause_1: false,
        }
    }
}

/// Carry a tenant's GB/T choices over, so both standards stack and count the same way.
impl From<crate::assessment::Config> for Config {
    fn from(g: crate::assessment::Config) -> Self {
        Config {
            stack_adjustments: g.stack_adjustments,
            risk_count_mode: g.risk_count_mode,
            allow_incomplete_when_coma: g.allow_incomplete_when_coma,
            ..Config::default()
        }
    }
}

/// What the assessors entered. `items` maps item codes to scores.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Input {
    pub items: BTreeMap<String, u8>,
    #[serde(default)]
    pub dementia: Dementia,
    #[serde(default)]
    pub mental_illness: MentalIllness,
    /// MZ/T counts 跌倒, 走失, 噎食 and 自杀 only; `other` must stay 0.
    #[serde(default)]
    pub risk_events_30d: RiskEvents,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// Clause 3: 意识水平 = 昏迷.
    Coma,
    /// Clause 1: cognitive impairment/dementia or mental illness.
    MentalDisorder,
    /// Clause 2: two or more risk events in 30 days (the count used).
    RiskEvents { count: u8 },
}

impl Reason {
    pub fn zh(&self) -> String {
        match self {
            Reason::Coma => "意识水平为昏迷，直接评定为重度失能（等级变更条款3）".into(),
            Reason::MentalDisorder => {
                "有认知障碍/痴呆或精神疾病，在原有能力级别上提高一个等级（等级变更条款1）".into()
            }
            Reason::RiskEvents { count } => format!(
                "近30天内发生跌倒、噎食、自杀、走失 {count} 次（2次及以上），在原有能力级别上提高一个等级（等级变更条款2）"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub standard: &'static str,
    /// Indexed by [`Domain`]. Sensory/communication is graded by rule, so its sum is always
    /// `None`; the others are `None` when items were left out in a coma.
    pub domain_sums: [Option<u8>; 4],
    /// §2.3, 0–3, indexed by [`Domain`]; `None` when items were left out in a coma.
    pub domain_grades: [Option<u8>; 4],
    /// §2.4; `None` when a grade is missing.
    pub initial_level: Option<u8>,
    /// Clauses applied; empty when the initial level is already 3 (clause 4).
    pub reasons: Vec<Reason>,
    /// 0–3.
    pub final_level: u8,
    pub config: Config,
    /// Points the assessors should look at (not errors).
    pub warnings: Vec<String>,
}

impl Outcome {
    pub fn final_level_name(&self) -> &'static str {
        LEVEL_NAMES[self.final_level as usize]
    }
}

/// Why an input cannot be scored; the message says which item and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error(
        "没有评估项目 {0}（MZ/T 039-2013 的项目为 B1.1–B1.10、B2.1–B2.3、B3.1–B3.4、B4.1–B4.5）"
    )]
    UnknownItem(String),
    #[error("缺少评估项目 {code}（{name}）")]
    MissingItem { code: String, name: String },
    #[error("评估项目 {code}（{name}）的得分 {score} 不在允许范围内（可选 {allowed}）")]
    ScoreNotAllowed {
        code: String,
        name: String,
        score: u8,
        allowed: String,
    },
    #[error("风险事件 {0} 的次数应为 0、1、2 或 3（3 表示 3 次及以上）")]
    RiskCount(&'static str),
    #[error("MZ/T 039-2013 只登记跌倒、走失、噎食、自杀四类风险事件，“其他”应为 0")]
    OtherRiskEvents,
}

impl InputError {
    /// The input field at fault, as a path in the request (`items.B1.10`, `risk_events_30d.fall`).
    pub fn field(&self) -> String {
        match self {
            InputError::UnknownItem(code)
            | InputError::MissingItem { code, .. }
            | InputError::ScoreNotAllowed { code, .. } => format!("items.{code}"),
            InputError::RiskCount(t) => format!("risk_events_30d.{t}"),
            InputError::OtherRiskEvents => "risk_events_30d.other".into(),
        }
    }
}

/// Score one assessment.
pub fn assess(input: &Input, cfg: &Config) -> Result<Outcome, InputError> {
    for code in input.items.keys() {
        if item_def(code).is_none() {
            return Err(InputError::UnknownItem(code.clone()));
        }
    }
    let ev = &input.risk_events_30d;
    let counts = [
        ("fall", ev.fall),
        ("wandering", ev.wandering),
        ("choking", ev.choking),
        ("suicide_self_harm", ev.suicide_self_harm),
    ];
    for (name, n) in counts {
        if n > 3 {
            return Err(InputError::RiskCount(name));
        }
    }
    // Rejected rather than ignored: silently dropping events could understate the level.
    if ev.other > 0 {
        return Err(InputError::OtherRiskEvents);
    }

    let mut sums = [0u8; 4];
    let mut complete = [true; 4];
    let mut missing = None;
    for def in &ITEMS {
        let Some(&score) = input.items.get(def.code) else {
            complete[def.domain.index()] = false;
            missing.get_or_insert(def);
            continue;
        };
        if !def.allows(score) {
            return Err(InputError::ScoreNotAllowed {
                code: def.code.into(),
                name: def.name.into(),
                score,
                allowed: def
                    .options
                    .iter()
                    .map(|o| o.score.to_string())
                    .collect::<Vec<_>>()
                    .join("、"),
            });
        }
        sums[def.domain.index()] += score;
    }
    let score = |code: &str| input.items.get(code).copied();
    let coma = score(CONSCIOUSNESS) == Some(COMA);
    if let Some(def) = missing
        && !(coma && cfg.allow_incomplete_when_coma)
    {
        return Err(InputError::MissingItem {
            code: def.code.into(),
            name: def.name.into(),
        });
    }

    let summed = |d: Domain| complete[d.index()].then_some(sums[d.index()]);
    let domain_sums = [
        summed(Adl),
        summed(Mental),
        None,
        summed(SocialParticipation),
    ];
    let sensory = if complete[SensoryCommunication.index()] {
        let s = |c| score(c).unwrap_or(0);
        Some(sensory_grade(s("B3.1"), s("B3.2"), s("B3.3"), s("B3.4")))
    } else {
        // Only reachable in a coma, which grades 3 whatever the other sensory items are.
        Some(3)
    };
    let domain_grades = [
        domain_sums[0].map(adl_grade),
        domain_sums[1].map(mental_grade),
        sensory,
        domain_sums[3].map(social_grade),
    ];
    let initial = match domain_grades {
        [Some(a), Some(m), Some(s), Some(p)] => Some(mzt_initial(a, m, s, p, cfg.conflict)),
        _ => None,
    };

    let cognition_diagnosed = score(COGNITION) == Some(2);
    let mental_disorder = input.dementia != Dementia::None
        || input.mental_illness != MentalIllness::None
        || (cfg.cognition_diagnosed_is_clause_1 && cognition_diagnosed);
    let mut warnings = vec![];
    if cognition_diagnosed && input.dementia == Dementia::None {
        warnings.push("认知功能评为“已确诊认知障碍”，但基本信息中未登记痴呆，请核对".into());
    }

    let mut reasons = vec![];
    let final_level = if initial == Some(3) {
        // Clause 4: already 重度失能, clauses 1–3 are ignored.
        3
    } else if coma {
        reasons.push(Reason::Coma);
        3
    } else {
        // Not in a coma, so every item was required and `initial` is known.
        let initial = initial.unwrap_or(3);
        let n = counts.map(|c| c.1);
        let (bump, mental, events) = crate::assessment::change_bump(
            mental_disorder,
            cfg.risk_count_mode.count(&n),
            cfg.stack_adjustments,
        );
        if mental {
            reasons.push(Reason::MentalDisorder);
        }
        if let Some(count) = events {
            reasons.push(Reason::RiskEvents { count });
        }
        (initial + bump).min(3)
    };
    Ok(Outcome {
        standard: STANDARD,
        domain_sums,
        domain_grades,
        initial_level: initial,
        reasons,
        final_level,
        config: *cfg,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Best answer everywhere: ADL 100, everything else 0.
    fn intact() -> Input {
        Input {
            items: ITEMS
                .iter()
                .map(|i| {
                    let best = if i.domain.higher_is_better() {
                        i.max()
                    } else {
                        0
                    };
                    (i.code.to_string(), best)
                })
                .collect(),
            ..Default::default()
        }
    }

    /// Set the items of `domain` so that their sum is `target`, filling from the first item.
    /// ADL targets are impairment-free totals (100 = best).
    fn set_sum(inp: &mut Input, domain: Domain, target: u8) {
        let mut left = target;
        for def in ITEMS.iter().filter(|d| d.domain == domain) {
            let s = def
                .options
                .iter()
                .map(|o| o.score)
                .filter(|s| *s <= left)
                .max()
                .unwrap();
            inp.items.insert(def.code.into(), s);
            left -= s;
        }
        assert_eq!(left, 0, "{domain:?} sum {target}");
    }

    fn set(inp: &mut Input, code: &str, score: u8) {
        assert!(item_def(code).is_some());
        inp.items.insert(code.into(), score);
    }

    /// An input whose domain grades are (a, m, s, p), using one band value per grade.
    fn with_grades(a: u8, m: u8, s: u8, p: u8) -> Input {
        let mut i = intact();
        set_sum(&mut i, Adl, [100, 80, 50, 20][a as usize]);
        set_sum(&mut i, Mental, [0, 1, 2, 5][m as usize]);
        // Clear consciousness; vision alone sets grades 0–3.
        set(&mut i, "B3.2", [0, 2, 3, 4][s as usize]);
        set_sum(&mut i, SocialParticipation, [0, 5, 10, 16][p as usize]);
        i
    }

    fn run(i: &Input) -> Outcome {
        assess(i, &Config::default()).unwrap()
    }

    fn levels(o: &Outcome) -> (Option<u8>, u8) {
        (o.initial_level, o.final_level)
    }

    #[test]
    fn table_arithmetic() {
        let mut max = [0u8; 4];
        let mut count = [0usize; 4];
        for i in &ITEMS {
            max[i.domain.index()] += i.max();
            count[i.domain.index()] += 1;
            assert!(i.allows(0), "{}", i.code);
        }
        assert_eq!(count, [10, 3, 4, 5]);
        assert_eq!((max[0], max[1], max[3]), (100, 6, 20));
        let sensory: Vec<u8> = ITEMS
            .iter()
            .filter(|i| i.domain == SensoryCommunication)
            .map(ItemDef::max)
            .collect();
        assert_eq!(sensory, [3, 4, 4, 3]);
        let adl: Vec<Vec<u8>> = ITEMS[..10]
            .iter()
            .map(|i| i.options.iter().map(|o| o.score).collect())
            .collect();
        let (a, b, c) = (vec![10, 5, 0], vec![5, 0], vec![15, 10, 5, 0]);
        assert_eq!(
            adl,
            [&a, &b, &b, &a, &a, &a, &a, &c, &c, &a].map(Clone::clone)
        );
        // Other domains run 0..=max without holes.
        for i in &ITEMS[10..] {
            let s: Vec<u8> = i.options.iter().map(|o| o.score).collect();
            assert_eq!(s, (0..=i.max()).collect::<Vec<_>>(), "{}", i.code);
        }
        let codes: Vec<&str> = ITEMS.iter().map(|i| i.code).collect();
        let expected: Vec<String> = [(1, 10), (2, 3), (3, 4), (4, 5)]
            .iter()
            .flat_map(|&(d, n)| (1..=n).map(move |k| format!("B{d}.{k}")))
            .collect();
        assert_eq!(codes, expected);
        assert_eq!(item_def(CONSCIOUSNESS).unwrap().name, "意识水平");
        assert_eq!(item_def(COGNITION).unwrap().name, "认知功能");
    }

    #[test]
    fn intact_is_level_0() {
        let o = run(&intact());
        assert_eq!(o.standard, "MZ/T 039-2013");
        assert_eq!(o.domain_sums, [Some(100), Some(0), None, Some(0)]);
        assert_eq!(o.domain_grades, [Some(0); 4]);
        assert_eq!(levels(&o), (Some(0), 0));
        assert!(o.reasons.is_empty() && o.warnings.is_empty());
        assert_eq!(o.final_level_name(), "能力完好");
    }

    #[test]
    fn band_boundaries() {
        for (sum, g) in [
            (100, 0),
            (95, 1),
            (65, 1),
            (60, 2),
            (45, 2),
            (40, 3),
            (0, 3),
        ] {
            assert_eq!(adl_grade(sum), g, "ADL {sum}");
            let mut i = intact();
            set_sum(&mut i, Adl, sum);
            let o = run(&i);
            assert_eq!((o.domain_sums[0], o.domain_grades[0]), (Some(sum), Some(g)));
        }
        for (sum, g) in [(0, 0), (1, 1), (2, 2), (3, 2), (4, 3), (6, 3)] {
            assert_eq!(mental_grade(sum), g, "mental {sum}");
            let mut i = intact();
            set_sum(&mut i, Mental, sum);
            assert_eq!(run(&i).domain_grades[1], Some(g));
        }
        for (sum, g) in [
            (0, 0),
            (2, 0),
            (3, 1),
            (7, 1),
            (8, 2),
            (13, 2),
            (14, 3),
            (20, 3),
        ] {
            assert_eq!(social_grade(sum), g, "social {sum}");
            let mut i = intact();
            set_sum(&mut i, SocialParticipation, sum);
            assert_eq!(run(&i).domain_grades[3], Some(g));
        }
        // Every reachable ADL sum lands in exactly one band.
        for sum in (0..=100).step_by(5) {
            let g = adl_grade(sum);
            let band = match sum {
                100 => 0,
                65..=95 => 1,
                45..=60 => 2,
                _ => 3,
            };
            assert_eq!(g, band);
        }
    }

    #[test]
    fn sensory_rule_branches() {
        let cases = [
            // 3: clear or drowsy with a 4/4/3, or stupor/coma.
            ((0, 4, 0, 0), 3),
            ((0, 0, 4, 0), 3),
            ((0, 0, 0, 3), 3),
            ((1, 4, 0, 0), 3),
            ((1, 0, 4, 0), 3),
            ((1, 0, 0, 3), 3),
            ((2, 0, 0, 0), 3),
            ((3, 0, 0, 0), 3),
            // 2: clear with a 3/3/2, or drowsy otherwise.
            ((0, 3, 0, 0), 2),
            ((0, 0, 3, 0), 2),
            ((0, 0, 0, 2), 2),
            ((1, 0, 0, 0), 2),
            ((1, 3, 3, 2), 2),
            // 1: clear with a 2/2/1.
            ((0, 2, 0, 0), 1),
            ((0, 0, 2, 0), 1),
            ((0, 0, 0, 1), 1),
            ((0, 2, 2, 1), 1),
            // 0: clear, vision and hearing 0–1, communication 0.
            ((0, 1, 1, 0), 0),
            ((0, 0, 0, 0), 0),
        ];
        for ((c, v, h, k), g) in cases {
            assert_eq!(sensory_grade(c, v, h, k), g, "{c} {v} {h} {k}");
            let mut i = intact();
            for (code, s) in [("B3.1", c), ("B3.2", v), ("B3.3", h), ("B3.4", k)] {
                set(&mut i, code, s);
            }
            assert_eq!(run(&i).domain_grades[2], Some(g));
        }
        // Every combination: the worst per-item severity, floored at 2 when drowsy and 3 beyond.
        for c in 0..=3u8 {
            for v in 0..=4u8 {
                for h in 0..=4u8 {
                    for k in 0..=3u8 {
                        let vh = |x: u8| x.saturating_sub(1);
                        let item_worst = vh(v).max(vh(h)).max(k);
                        let floor = [0, 2, 3, 3][c as usize];
                        assert_eq!(sensory_grade(c, v, h, k), item_worst.max(floor));
                    }
                }
            }
        }
    }

    #[test]
    fn initial_level_lines() {
        use ConflictReading::{Mild, Moderate};
        let f = |a, m, s, p| mzt_initial(a, m, s, p, Moderate);
        // A = 3.
        assert_eq!(f(3, 0, 0, 0), 3);
        // A = 2 with any 3, or all four 2.
        assert_eq!((f(2, 3, 0, 0), f(2, 0, 3, 0), f(2, 0, 0, 3)), (3, 3, 3));
        assert_eq!(f(2, 2, 2, 2), 3);
        // A = 1 with M, S, P all 2, or any 3.
        assert_eq!(f(1, 2, 2, 2), 2);
        assert_eq!((f(1, 3, 2, 2), f(1, 2, 3, 2), f(1, 2, 2, 3)), (2, 2, 2));
        // CONFLICT: A = 1, one domain 3 and another 0/1.
        for (m, s, p) in [(0, 0, 3), (1, 3, 2), (3, 0, 0), (3, 3, 1)] {
            assert_eq!(f(1, m, s, p), 2);
            assert_eq!(mzt_initial(1, m, s, p, Mild), 1);
        }
        // No conflict when the others are 2 or 3: both readings give 2.
        assert_eq!(mzt_initial(1, 2, 3, 2, Mild), 2);
        assert_eq!(mzt_initial(1, 2, 2, 2, Mild), 2);
        // A = 2, written: one or two of M, S, P are 1 or 2.
        assert_eq!((f(2, 1, 0, 0), f(2, 2, 2, 0)), (2, 2));
        // A = 2 gap-fills: (0,0,0) and three of {1,2} not all 2.
        assert_eq!((f(2, 0, 0, 0), f(2, 1, 1, 1), f(2, 1, 2, 2)), (2, 2, 2));
        // A = 1 otherwise.
        assert_eq!((f(1, 0, 0, 0), f(1, 1, 2, 2), f(1, 1, 1, 1)), (1, 1, 1));
        // A = 0.
        assert_eq!((f(0, 0, 0, 0), f(0, 0, 0, 1)), (0, 0));
        assert_eq!((f(0, 0, 0, 2), f(0, 1, 0, 0), f(0, 0, 1, 0)), (1, 1, 1));
        assert_eq!(f(0, 3, 3, 3), 1);
        // A = 0 gap-fill: M = S = 0, P = 3.
        assert_eq!(f(0, 0, 0, 3), 1);
        // Through assess, with the switch.
        let i = with_grades(1, 0, 0, 3);
        assert_eq!(run(&i).domain_grades, [1, 0, 0, 3].map(Some));
        assert_eq!(levels(&run(&i)), (Some(2), 2));
        let mild = Config {
            conflict: Mild,
            ..Default::default()
        };
        assert_eq!(levels(&assess(&i, &mild).unwrap()), (Some(1), 1));
    }

    /// The written sentences of §2.4, each level whose sentence matches.
    fn written(a: u8, m: u8, s: u8, p: u8) -> Vec<u8> {
        let msp = [m, s, p];
        let n12 = msp.iter().filter(|x| (1..=2).contains(*x)).count();
        let any_3 = msp.contains(&3);
        let mut out = vec![];
        if a == 0 && m == 0 && s == 0 && p <= 1 {
            out.push(0);
        }
        if (a == 0 && (m >= 1 || s >= 1 || p == 2)) || (a == 1 && msp.iter().any(|x| *x <= 1)) {
            out.push(1);
        }
        if (a == 1 && (msp == [2, 2, 2] || any_3)) || (a == 2 && (1..=2).contains(&n12)) {
            out.push(2);
        }
        if a == 3 || (a == 2 && msp == [2, 2, 2]) || (a == 2 && any_3) {
            out.push(3);
        }
        out
    }

    #[test]
    fn initial_level_matches_written_rule_and_documented_gaps() {
        use ConflictReading::{Mild, Moderate};
        let (mut gaps, mut conflicts, mut overlaps) = (0, 0, 0);
        for a in 0..=3 {
            for m in 0..=3 {
                for s in 0..=3 {
                    for p in 0..=3 {
                        let w = written(a, m, s, p);
                        let (hi, lo) = (
                            mzt_initial(a, m, s, p, Moderate),
                            mzt_initial(a, m, s, p, Mild),
                        );
                        let msp = [m, s, p];
                        match w.as_slice() {
                            [one] => assert_eq!((hi, lo), (*one, *one), "{a}{m}{s}{p}"),
                            [] => {
                                gaps += 1;
                                let a2 = a == 2
                                    && (msp == [0, 0, 0]
                                        || (msp.iter().all(|x| (1..=2).contains(x))
                                            && msp != [2, 2, 2]));
                                let a0 = a == 0 && m == 0 && s == 0 && p == 3;
                                assert!(a2 || a0, "undocumented gap {a}{m}{s}{p}");
                                assert_eq!((hi, lo), if a2 { (2, 2) } else { (1, 1) });
                            }
                            // The documented CONFLICT: the switch decides.
                            [1, 2] => {
                                conflicts += 1;
                                assert!(a == 1 && msp.contains(&3) && msp.iter().any(|x| *x <= 1));
                                assert_eq!((hi, lo), (2, 1));
                            }
                            // A = 2 with a 3 and one or two 1/2s: 中度 and 重度 both match; most
                            // severe first gives 3 under either reading.
                            [2, 3] => {
                                overlaps += 1;
                                assert!(a == 2 && msp.contains(&3));
                                assert_eq!((hi, lo), (3, 3));
                            }
                            _ => panic!("unexpected overlap {w:?} at {a}{m}{s}{p}"),
                        }
                    }
                }
            }
        }
        // Gaps: A=2 (0,0,0) + 7 of {1,2}^3 not all 2, and A=0 (0,0,3). Conflicts: 64 - 27 (no 3)
        // - 7 (3s with the others only 2/3). Overlaps: 3s with one or two 1/2s, 12 + 12 + 6.
        assert_eq!((gaps, conflicts, overlaps), (9, 30, 30));
    }

    #[test]
    fn initial_level_is_monotone_in_every_grade() {
        for conflict in [ConflictReading::Moderate, ConflictReading::Mild] {
            for g in 0..256u32 {
                let v = [0, 2, 4, 6].map(|sh| ((g >> sh) & 3) as u8);
                let lvl = mzt_initial(v[0], v[1], v[2], v[3], conflict);
                for k in 0..4 {
                    if v[k] < 3 {
                        let mut w = v;
                        w[k] += 1;
                        assert!(mzt_initial(w[0], w[1], w[2], w[3], conflict) >= lvl);
                    }
                }
            }
        }
    }

    #[test]
    fn clause_1_mental_disorder() {
        let mut i = with_grades(1, 0, 0, 0);
        assert_eq!(levels(&run(&i)), (Some(1), 1));
        i.dementia = Dementia::Mild;
        let o = run(&i);
        assert_eq!(levels(&o), (Some(1), 2));
        assert_eq!(o.reasons, vec![Reason::MentalDisorder]);
        assert_eq!(o.final_level_name(), "中度失能");
        i.dementia = Dementia::None;
        i.mental_illness = MentalIllness::BipolarDisorder;
        assert_eq!(levels(&run(&i)), (Some(1), 2));
        // 认知功能 = 2 counts only with the switch, and warns without a recorded dementia.
        let mut i = with_grades(0, 0, 0, 0);
        set(&mut i, COGNITION, 2);
        let o = run(&i);
        assert_eq!(levels(&o), (Some(1), 1));
        assert_eq!(o.warnings.len(), 1);
        let cog = Config {
            cognition_diagnosed_is_clause_1: true,
            ..Default::default()
        };
        let o = assess(&i, &cog).unwrap();
        assert_eq!(levels(&o), (Some(1), 2));
        assert_eq!(o.reasons, vec![Reason::MentalDisorder]);
        i.dementia = Dementia::Severe;
        assert!(run(&i).warnings.is_empty());
    }

    #[test]
    fn clause_2_risk_events_and_switches() {
        let mut i = with_grades(0, 0, 0, 0);
        i.risk_events_30d.fall = 1;
        assert_eq!(levels(&run(&i)), (Some(0), 0));
        i.risk_events_30d.wandering = 1;
        let o = run(&i);
        assert_eq!(levels(&o), (Some(0), 1));
        assert_eq!(o.reasons, vec![Reason::RiskEvents { count: 2 }]);
        let per_type = Config {
            risk_count_mode: RiskCountMode::PerType,
            ..Default::default()
        };
        assert_eq!(assess(&i, &per_type).unwrap().final_level, 0);
        i.risk_events_30d.choking = 2;
        let o = assess(&i, &per_type).unwrap();
        assert_eq!(o.reasons, vec![Reason::RiskEvents { count: 2 }]);
        assert_eq!(o.final_level, 1);
        // Both clauses: one level by default, two when stacked, capped at 3.
        let mut i = with_grades(1, 0, 0, 0);
        i.dementia = Dementia::Moderate;
        i.risk_events_30d.suicide_self_harm = 2;
        assert_eq!(levels(&run(&i)), (Some(1), 2));
        let stack = Config {
            stack_adjustments: true,
            ..Default::default()
        };
        let o = assess(&i, &stack).unwrap();
        assert_eq!(levels(&o), (Some(1), 3));
        assert_eq!(o.reasons.len(), 2);
        let mut i = with_grades(2, 0, 0, 0);
        i.dementia = Dementia::Mild;
        i.risk_events_30d.fall = 3;
        assert_eq!(levels(&assess(&i, &stack).unwrap()), (Some(2), 3));
    }

    #[test]
    fn clause_4_initial_3_is_not_raised() {
        let mut i = with_grades(3, 0, 0, 0);
        i.dementia = Dementia::Severe;
        i.risk_events_30d.fall = 3;
        let stack = Config {
            stack_adjustments: true,
            ..Default::default()
        };
        let o = assess(&i, &stack).unwrap();
        assert_eq!(levels(&o), (Some(3), 3));
        assert!(o.reasons.is_empty());
        assert_eq!(o.final_level_name(), "重度失能");
        // Also in a coma.
        set(&mut i, CONSCIOUSNESS, 3);
        assert!(run(&i).reasons.is_empty());
    }

    #[test]
    fn clause_3_coma() {
        // Complete form: the sensory grade is 3 but the initial level only 1.
        let mut i = intact();
        set(&mut i, CONSCIOUSNESS, 3);
        let o = run(&i);
        assert_eq!(o.domain_grades, [Some(0), Some(0), Some(3), Some(0)]);
        assert_eq!(levels(&o), (Some(1), 3));
        assert_eq!(o.reasons, vec![Reason::Coma]);
        // Stupor grades 3 as well but is not a coma.
        set(&mut i, CONSCIOUSNESS, 2);
        let o = run(&i);
        assert_eq!(levels(&o), (Some(1), 1));
        assert!(o.reasons.is_empty());
    }

    #[test]
    fn coma_may_leave_items_out() {
        let i = Input {
            items: [(CONSCIOUSNESS.to_string(), 3u8), ("B1.1".to_string(), 5)]
                .into_iter()
                .collect(),
            dementia: Dementia::Mild,
            ..Default::default()
        };
        let o = run(&i);
        assert_eq!(o.domain_sums, [None; 4]);
        assert_eq!(o.domain_grades, [None, None, Some(3), None]);
        assert_eq!(levels(&o), (None, 3));
        assert_eq!(o.reasons, vec![Reason::Coma]);
        let strict = Config {
            allow_incomplete_when_coma: false,
            ..Default::default()
        };
        assert_eq!(
            assess(&i, &strict).unwrap_err(),
            InputError::MissingItem {
                code: "B1.2".into(),
                name: "洗澡".into()
            }
        );
        // Without a coma every item is required.
        let mut i = intact();
        i.items.remove("B3.2");
        let e = assess(&i, &Config::default()).unwrap_err();
        assert_eq!(e.to_string(), "缺少评估项目 B3.2（视力）");
    }

    #[test]
    fn invalid_inputs_name_the_item() {
        let cfg = Config::default();
        let mut i = intact();
        set(&mut i, "B1.2", 10);
        let e = assess(&i, &cfg).unwrap_err();
        assert_eq!(
            e.to_string(),
            "评估项目 B1.2（洗澡）的得分 10 不在允许范围内（可选 5、0）"
        );
        assert_eq!(e.field(), "items.B1.2");
        let mut i = intact();
        set(&mut i, "B1.8", 12);
        let e = assess(&i, &cfg).unwrap_err().to_string();
        assert!(e.contains("B1.8") && e.contains("15、10、5、0"), "{e}");
        let mut i = intact();
        set(&mut i, "B3.2", 5);
        let e = assess(&i, &cfg).unwrap_err().to_string();
        assert!(e.contains("B3.2") && e.contains("0、1、2、3、4"), "{e}");
        let mut i = intact();
        set(&mut i, "B2.3", 3);
        assert!(assess(&i, &cfg).unwrap_err().to_string().contains("B2.3"));
        // Invalid scores are rejected in a coma too.
        let mut i = intact();
        set(&mut i, CONSCIOUSNESS, 3);
        set(&mut i, "B4.5", 9);
        assert!(assess(&i, &cfg).unwrap_err().to_string().contains("B4.5"));
        set(&mut i, CONSCIOUSNESS, 4);
        assert!(assess(&i, &cfg).unwrap_err().to_string().contains("B3.1"));
        for code in ["B1.11", "B3.9", "B5.1", "b1.1"] {
            let mut i = intact();
            i.items.insert(code.into(), 0);
            let e = assess(&i, &cfg).unwrap_err();
            assert_eq!(e, InputError::UnknownItem(code.into()));
            assert!(e.to_string().contains(code));
            assert_eq!(e.field(), format!("items.{code}"));
        }
        let mut i = intact();
        i.risk_events_30d.wandering = 4;
        let e = assess(&i, &cfg).unwrap_err();
        assert_eq!(e, InputError::RiskCount("wandering"));
        assert_eq!(e.field(), "risk_events_30d.wandering");
        let mut i = intact();
        i.risk_events_30d.other = 2;
        let e = assess(&i, &cfg).unwrap_err();
        assert_eq!(e, InputError::OtherRiskEvents);
        assert_eq!(e.field(), "risk_events_30d.other");
    }

    #[test]
    fn config_from_gbt_keeps_the_shared_switches() {
        let g = crate::assessment::Config {
            stack_adjustments: true,
            risk_count_mode: RiskCountMode::PerType,
            coma_level: 4,
            allow_incomplete_when_coma: false,
        };
        let c = Config::from(g);
        assert!(c.stack_adjustments && !c.allow_incomplete_when_coma);
        assert_eq!(c.risk_count_mode, RiskCountMode::PerType);
        assert_eq!(c.conflict, ConflictReading::Moderate);
    }

    fn any_case() -> impl Strategy<Value = (Input, Config)> {
        let items: Vec<_> = ITEMS
            .iter()
            .map(|d| {
                proptest::sample::select(d.options.iter().map(|o| o.score).collect::<Vec<_>>())
            })
            .collect();
        let flags = proptest::collection::vec(any::<bool>(), 6);
        (items, flags, 0u8..=3, 0u8..=3).prop_map(|(scores, f, fall, choking)| {
            let input = Input {
                items: ITEMS
                    .iter()
                    .zip(scores)
                    .map(|(d, s)| (d.code.to_string(), s))
                    .collect(),
                dementia: if f[0] { Dementia::Mild } else { Dementia::None },
                mental_illness: if f[1] {
                    MentalIllness::Schizophrenia
                } else {
                    MentalIllness::None
                },
                risk_events_30d: RiskEvents {
                    fall,
                    choking,
                    ..Default::default()
                },
            };
            let cfg = Config {
                conflict: if f[2] {
                    ConflictReading::Mild
                } else {
                    ConflictReading::Moderate
                },
                stack_adjustments: f[3],
                risk_count_mode: if f[4] {
                    RiskCountMode::PerType
                } else {
                    RiskCountMode::Total
                },
                allow_incomplete_when_coma: true,
                cognition_diagnosed_is_clause_1: f[5],
            };
            (input, cfg)
        })
    }

    proptest! {
        #[test]
        fn bounds((i, cfg) in any_case()) {
            let o = assess(&i, &cfg).unwrap();
            let initial = o.initial_level.unwrap();
            prop_assert!(o.final_level <= 3);
            prop_assert!(o.final_level >= initial);
            prop_assert!(o.domain_grades.iter().all(|g| g.unwrap() <= 3));
            prop_assert!(o.domain_sums[0].unwrap() <= 100 && o.domain_sums[0].unwrap().is_multiple_of(5));
            prop_assert!(o.domain_sums[1].unwrap() <= 6 && o.domain_sums[3].unwrap() <= 20);
            if initial == 3 {
                prop_assert!(o.reasons.is_empty());
            }
        }

        /// Making any item better never raises the level.
        #[test]
        fn monotone((i, cfg) in any_case(), k in 0usize..22) {
            let def = &ITEMS[k];
            if let Some(better) = def.better(i.items[def.code]) {
                let mut j = i.clone();
                j.items.insert(def.code.into(), better);
                let (before, after) = (assess(&i, &cfg).unwrap(), assess(&j, &cfg).unwrap());
                prop_assert!(after.final_level <= before.final_level);
                prop_assert!(after.initial_level <= before.initial_level);
                for d in 0..4 {
                    prop_assert!(after.domain_grades[d] <= before.domain_grades[d]);
                }
            }
        }
    }
}

//! Ability assessment to GB/T 42195-2022 《老年人能力评估规范》: the item tables of Appendix B as data,
//! validation, the four domain scores, the total, the initial level (C.3), the change rules R1–R3
//! (C.4) and the final level (C.5). Pure: no I/O. The open points of the standard are switches in
//! [`Config`] at the defaults recommended by `domain/assessment.md` §1.6.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const STANDARD: &str = "GB/T 42195-2022";

/// The four primary indicators (一级指标), in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Domain {
    SelfCare,
    BasicMotor,
    Mental,
    PerceptionSocial,
}

impl Domain {
    pub const ALL: [Domain; 4] = [
        Domain::SelfCare,
        Domain::BasicMotor,
        Domain::Mental,
        Domain::PerceptionSocial,
    ];
    pub fn zh(self) -> &'static str {
        match self {
            Domain::SelfCare => "自理能力",
            Domain::BasicMotor => "基础运动能力",
            Domain::Mental => "精神状态",
            Domain::PerceptionSocial => "感知觉与社会参与",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// One answer of an item. Two options may share a score (B3.9: stupor and coma are both 0), so the
/// option code is kept beside the score.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OptionDef {
    pub code: &'static str,
    pub score: u8,
    pub label: &'static str,
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
}

const fn o(code: &'static str, score: u8, label: &'static str) -> OptionDef {
    OptionDef { code, score, label }
}

/// The common five-step assistance scale (S5).
const S5: &[OptionDef] = &[
    o("4", 4, "独立完成，不需要协助"),
    o("3", 3, "在他人指导或提示下完成"),
    o("2", 2, "需要他人协助，但以自身完成为主"),
    o("1", 1, "主要依靠他人协助，自身能给予配合"),
    o("0", 0, "完全依赖他人协助，且不能给予配合"),
];

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

use Domain::*;

/// Appendix B, 26 items. Option labels are short plain-Chinese paraphrases.
pub const ITEMS: [ItemDef; 26] = [
    item(
        "B1.1",
        SelfCare,
        "进食",
        &[
            o("4", 4, "独立使用餐具将食物送进口中并咽下，没有呛咳"),
            o("3", 3, "在他人指导或提示下完成，或独立使用辅具，没有呛咳"),
            o(
                "2",
                2,
                "进食中需要少量接触式协助，偶尔（每月一次及以上）呛咳",
            ),
            o(
                "1",
                1,
                "进食中需要大量接触式协助，经常（每周一次及以上）呛咳",
            ),
            o("0", 0, "完全依赖他人协助进食，或吞咽困难，或留置营养管"),
        ],
    ),
    item("B1.2", SelfCare, "修饰", S5),
    item("B1.3", SelfCare, "洗澡", S5),
    item("B1.4", SelfCare, "穿/脱上衣", S5),
    item("B1.5", SelfCare, "穿/脱裤子和鞋袜", S5),
    item(
        "B1.6",
        SelfCare,
        "小便控制",
        &[
            o("4", 4, "可自行控制排尿，排尿次数、排尿控制均正常"),
            o(
                "3",
                3,
                "白天可自行控制，夜间次数增多或控制较差，或自行使用尿布、尿垫",
            ),
            o(
                "2",
                2,
                "白天大部分时间可控制，偶有失禁（每天少于一次、每周多于一次），或需要少量协助使用尿垫",
            ),
            o(
                "1",
                1,
                "白天大部分时间不能控制（每天一次及以上），夜间失禁，或需要大量协助使用尿垫",
            ),
            o("0", 0, "小便失禁，完全不能控制，或留置导尿管"),
        ],
    ),
    item(
        "B1.7",
        SelfCare,
        "大便控制",
        &[
            o("4", 4, "可正常自行控制大便排出"),
            o(
                "3",
                3,
                "有时（每周少于一次）便秘或失禁，或自行使用开塞露、尿垫",
            ),
            o(
                "2",
                2,
                "经常（每天少于一次、每周多于一次）便秘或失禁，或需要少量协助",
            ),
            o(
                "1",
                1,
                "大部分时间（每天一次及以上）便秘或失禁，但不是完全失禁，或需要大量协助",
            ),
            o("0", 0, "严重便秘或完全失禁，需要依赖他人协助"),
        ],
    ),
    item("B1.8", SelfCare, "如厕", S5),
    item("B2.1", BasicMotor, "床上体位转移", S5),
    item("B2.2", BasicMotor, "床椅转移", S5),
    item(
        "B2.3",
        BasicMotor,
        "平地行走",
        &[
            o("4", 4, "可独自平地行走约50米，没有摔倒风险"),
            o(
                "3",
                3,
                "可平地行走约50米，但有摔倒风险，需要他人监护、指导，或使用拐杖、助行器",
            ),
            o("2", 2, "在他人少量扶持下才能行走"),
            o("1", 1, "在他人大量扶持下才能行走"),
            o("0", 0, "完全不能行走"),
        ],
    ),
    item(
        "B2.4",
        BasicMotor,
        "上下楼梯",
        &[
            o("3", 3, "可独立上下楼梯（连续10–15个台阶）"),
            o("2", 2, "在他人指导或提示下完成"),
            o("1", 1, "需要他人协助，但以自身完成为主"),
            o("0", 0, "主要依靠他人协助或完全依赖他人"),
        ],
    ),
    item(
        "B3.1",
        Mental,
        "时间定向",
        &[
            o("4", 4, "时间观念清楚，知道年月，日期或星期相差不超过一天"),
            o("3", 3, "时间观念有些下降，日期或星期相差两天及以上"),
            o("2", 2, "时间观念较差，只知道上半年或下半年、季节"),
            o("1", 1, "时间观念很差，只知道上午下午、白天黑夜"),
            o("0", 0, "无时间观念"),
        ],
    ),
    item(
        "B3.2",
        Mental,
        "空间定向",
        &[
            o("4", 4, "能在日常生活范围内单独外出，如在小区内买东西"),
            o("3", 3, "不能单独外出，但能准确说出自己的住址"),
            o("2", 2, "不能单独外出，知道较多有关住址的信息"),
            o("1", 1, "不能单独外出，知道较少有关住址的信息"),
            o("0", 0, "不能单独外出，无空间观念"),
        ],
    ),
    item(
        "B3.3",
        Mental,
        "人物定向",
        &[
            o("4", 4, "认识长期共同生活的人，能称呼并知道关系"),
            o("3", 3, "认识大部分共同生活的人，能称呼或知道关系"),
            o("2", 2, "能认识部分日常同住的亲人或照护者"),
            o("1", 1, "只认识自己或极少数人"),
            o("0", 0, "不认识任何人，包括自己"),
        ],
    ),
    item(
        "B3.4",
        Mental,
        "记忆",
        &[
            o("4", 4, "记忆力与年龄相称，能完整回忆"),
            o("3", 3, "轻度记忆障碍（5分钟后说出3个词语中的0–1个）"),
            o("2", 2, "中度记忆障碍（不能回忆近期的事，如上一顿饭）"),
            o("1", 1, "重度记忆障碍（不能回忆远期的事，如老朋友）"),
            o("0", 0, "记忆完全紊乱"),
        ],
    ),
    item(
        "B3.5",
        Mental,
        "理解能力",
        &[
            o("4", 4, "能正常理解他人的话"),
            o("3", 3, "能理解他人的话，但需要更多时间"),
            o("2", 2, "理解有困难，需要频繁重复或简化口头表达"),
            o("1", 1, "理解有严重困难，需要大量他人帮助"),
            o("0", 0, "完全不能理解他人的话"),
        ],
    ),
    item(
        "B3.6",
        Mental,
        "表达能力",
        &[
            o("4", 4, "能正常表达自己的想法"),
            o("3", 3, "能表达自己的需要，但需要更多时间"),
            o("2", 2, "表达有困难，需要频繁重复或简化"),
            o("1", 1, "表达有严重困难，需要大量他人帮助"),
            o("0", 0, "完全不能表达需要"),
        ],
    ),
    item(
        "B3.7",
        Mental,
        "攻击行为",
        &[
            o("1", 1, "未出现"),
            o("0", 0, "近一个月内出现过身体或语言攻击行为"),
        ],
    ),
    item(
        "B3.8",
        Mental,
        "抑郁症状",
        &[o("1", 1, "未出现"), o("0", 0, "近一个月内出现过负性情绪")],
    ),
    item(
        "B3.9",
        Mental,
        "意识水平",
        &[
            o("clear", 2, "神志清醒，对周围环境能做出正确反应"),
            o("drowsy_or_confused", 1, "嗜睡（可唤醒）或意识模糊"),
            o("stupor", 0, "昏睡"),
            o("coma", 0, "昏迷"),
        ],
    ),
    item(
        "B4.1",
        PerceptionSocial,
        "视力",
        &[
            o("2", 2, "视力正常"),
            o(
                "1",
                1,
                "能看清大字体，但看不清书报上的标准字体；或看不清报纸大标题，但能辨认物体",
            ),
            o("0", 0, "只能看到光、颜色和形状，或完全失明"),
        ],
    ),
    item(
        "B4.2",
        PerceptionSocial,
        "听力",
        &[
            o("2", 2, "听力正常"),
            o(
                "1",
                1,
                "听不清正常交流声或2米以外的说话声，需要安静环境或大声说话",
            ),
            o("0", 0, "讲话者大声、缓慢说话才能部分听见，或完全失聪"),
        ],
    ),
    item(
        "B4.3",
        PerceptionSocial,
        "执行日常事务",
        &[
            o("4", 4, "能完全独立处理日常事务（洗衣、小额购物、服药等）"),
            o("3", 3, "需要他人监护或指导"),
            o("2", 2, "需要少量协助"),
            o("1", 1, "需要大量协助"),
            o("0", 0, "完全依赖他人"),
        ],
    ),
    item(
        "B4.4",
        PerceptionSocial,
        "使用交通工具外出",
        &[
            o("3", 3, "能自己骑车或独自搭乘公共交通工具外出"),
            o("2", 2, "能独自乘坐出租车，但不会搭乘其他公共交通工具"),
            o("1", 1, "在他人陪同或协助下搭乘公共交通工具外出"),
            o("0", 0, "只能在他人协助下乘坐出租车或私家车，或不能外出"),
        ],
    ),
    item(
        "B4.5",
        PerceptionSocial,
        "社会交往能力",
        &[
            o("4", 4, "参与社会，适应环境，待人接物恰当"),
            o(
                "3",
                3,
                "能适应简单环境，主动接触人，初见面时难让人发现智力问题，不能理解隐喻语",
            ),
            o(
                "2",
                2,
                "脱离社会，只能被动接触，谈话中很多不适词句，容易上当受骗",
            ),
            o("1", 1, "勉强可与人交往，谈吐内容不清楚，表情不恰当"),
            o("0", 0, "不能与人交往"),
        ],
    ),
];

pub const LEVEL_NAMES: [&str; 5] = ["能力完好", "轻度失能", "中度失能", "重度失能", "完全失能"];

pub fn item_def(code: &str) -> Option<&'static ItemDef> {
    ITEMS.iter().find(|i| i.code == code)
}

/// C.3: the initial level from the total alone.
pub fn initial_level(total: u8) -> u8 {
    match total {
        90.. => 0,
        66..=89 => 1,
        46..=65 => 2,
        30..=45 => 3,
        _ => 4,
    }
}

/// Care-risk events in the last 30 days (A.2.14), per type; 3 stands for "3次及以上".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RiskEvents {
    pub fall: u8,
    pub wandering: u8,
    pub choking: u8,
    pub suicide_self_harm: u8,
    pub other: u8,
}

impl RiskEvents {
    /// No event of any kind.
    pub fn is_none(&self) -> bool {
        *self == RiskEvents::default()
    }

    fn counts(&self) -> [(&'static str, u8); 5] {
        [
            ("fall", self.fall),
            ("wandering", self.wandering),
            ("choking", self.choking),
            ("suicide_self_harm", self.suicide_self_harm),
            ("other", self.other),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RiskCountMode {
    /// Events of all types added up (§1.6 A4, default).
    #[default]
    Total,
    /// Only the most frequent single type counts.
    PerType,
}

impl RiskCountMode {
    /// The number of 30-day events the rule compares with 2.
    pub fn count(self, counts: &[u8]) -> u8 {
        match self {
            RiskCountMode::Total => counts.iter().sum(),
            RiskCountMode::PerType => counts.iter().copied().max().unwrap_or(0),
        }
    }
}

/// The change rules both standards share (GB/T R2/R3, MZ/T clauses 1/2): a mental disorder and
/// two or more risk events each raise the level by one, together by one unless `stack`. Returns
/// the raise, whether the mental rule applied and the event count when the event rule did.
pub fn change_bump(mental: bool, events: u8, stack: bool) -> (u8, bool, Option<u8>) {
    let risky = events >= 2;
    let bump = mental as u8 + risky as u8;
    (
        if stack { bump } else { bump.min(1) },
        mental,
        risky.then_some(events),
    )
}

/// The standard's open points (§1.6), stored with every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// R2 and R3 both hit: one level up (false, default) or two.
    pub stack_adjustments: bool,
    pub risk_count_mode: RiskCountMode,
    /// Final level in a coma: 4 (C.4, default) or 3 (the note under B3.9).
    pub coma_level: u8,
    /// In a coma the rest of Appendix B may be left out (§1.6 A7).
    pub allow_incomplete_when_coma: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            stack_adjustments: false,
            risk_count_mode: RiskCountMode::Total,
            coma_level: 4,
            allow_incomplete_when_coma: true,
        }
    }
}

/// What the assessors entered. `items` maps item codes to scores; `options` may name the chosen
/// option where one score covers two states (B3.9 `stupor` / `coma`). Written without the fields
/// that hold their defaults (no options, no, none): reading fills them in again, and a typical
/// stored input is 220 bytes instead of 370.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub items: BTreeMap<String, u8>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// A.5.11 昏迷.
    #[serde(default, skip_serializing_if = "is_false")]
    pub coma: bool,
    /// Dementia F00–F03, confirmed (确诊).
    #[serde(default, skip_serializing_if = "is_false")]
    pub dementia_confirmed: bool,
    /// Another mental or behavioural disorder F04–F99 diagnosed by a psychiatric specialist.
    #[serde(default, skip_serializing_if = "is_false")]
    pub psychiatric_dx_by_specialist: bool,
    #[serde(default, skip_serializing_if = "RiskEvents::is_none")]
    pub risk_events_30d: RiskEvents,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Reason {
    /// R1: in a coma.
    Coma,
    /// R2: dementia or a specialist's psychiatric diagnosis.
    MentalDisorder,
    /// R3: two or more care-risk events in 30 days (the count used).
    RiskEvents { count: u8 },
}

impl Reason {
    pub fn zh(&self) -> String {
        match self {
            Reason::Coma => "处于昏迷状态，直接评定为完全失能（R1）".into(),
            Reason::MentalDisorder => {
                "确诊为痴呆，或经精神科专科医生诊断的其他精神和行为障碍，在原有能力级别上提高一个等级（R2）".into()
            }
            Reason::RiskEvents { count } => format!(
                "近30天内发生照护风险事件 {count} 次（2次及以上），在原有能力级别上提高一个等级（R3）"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub standard: &'static str,
    /// Self-care, basic motor, mental state, perception and social participation (C.1).
    pub domain_scores: [u8; 4],
    /// C.2; `None` when items were left out in a coma (A7).
    pub total: Option<u8>,
    /// C.3; `None` together with `total`.
    pub initial_level: Option<u8>,
    pub reasons: Vec<Reason>,
    /// C.5, 0–4.
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
    #[error("没有评估项目 {0}（GB/T 42195-2022 的项目为 B1.1–B4.5）")]
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
    #[error("评估项目 {code} 的选项 {option} 不存在或与得分 {score} 不符")]
    OptionMismatch {
        code: String,
        option: String,
        score: u8,
    },
    #[error("照护风险事件 {0} 的次数应为 0、1、2 或 3（3 表示 3 次及以上）")]
    RiskCount(&'static str),
    #[error("配置错误：昏迷时的等级只能是 3 或 4")]
    ComaLevel,
}

impl InputError {
    /// The input field at fault, as a path in the request (`items.B2.4`, `risk_events_30d.fall`).
    pub fn field(&self) -> String {
        match self {
            InputError::UnknownItem(code)
            | InputError::MissingItem { code, .. }
            | InputError::ScoreNotAllowed { code, .. }
            | InputError::OptionMismatch { code, .. } => format!("items.{code}"),
            InputError::RiskCount(t) => format!("risk_events_30d.{t}"),
            InputError::ComaLevel => "config".into(),
        }
    }
}

/// Score one assessment.
pub fn assess(input: &Input, cfg: &Config) -> Result<Outcome, InputError> {
    if !(3..=4).contains(&cfg.coma_level) {
        return Err(InputError::ComaLevel);
    }
    for code in input.items.keys().chain(input.options.keys()) {
        if item_def(code).is_none() {
            return Err(InputError::UnknownItem(code.clone()));
        }
    }
    for (name, n) in input.risk_events_30d.counts() {
        if n > 3 {
            return Err(InputError::RiskCount(name));
        }
    }
    let b39_coma = input.options.get("B3.9").is_some_and(|o| o == "coma");
    let coma = input.coma || b39_coma;
    let mut warnings = vec![];
    if b39_coma && !input.coma {
        warnings.push("意识水平选择了“昏迷”，但基本信息中未登记昏迷（A.5.11），请核对".into());
    }
    let mut domain_scores = [0u8; 4];
    let mut missing = vec![];
    for def in &ITEMS {
        let Some(&score) = input.items.get(def.code) else {
            missing.push(def);
            continue;
        };
        if !def.allows(score) {
            let mut allowed: Vec<u8> = def.options.iter().map(|o| o.score).collect();
            allowed.dedup();
            return Err(InputError::ScoreNotAllowed {
                code: def.code.into(),
                name: def.name.into(),
                score,
                allowed: allowed
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join("、"),
            });
        }
        if let Some(opt) = input.options.get(def.code)
            && !def
                .options
                .iter()
                .any(|o| o.code == opt && o.score == score)
        {
            return Err(InputError::OptionMismatch {
                code: def.code.into(),
                option: opt.clone(),
                score,
            });
        }
        domain_scores[def.domain.index()] += score;
    }
    let complete = missing.is_empty();
    if let Some(def) = missing.first()
        && !(coma && cfg.allow_incomplete_when_coma)
    {
        return Err(InputError::MissingItem {
            code: def.code.into(),
            name: def.name.into(),
        });
    }
    let total = complete.then(|| domain_scores.iter().sum::<u8>());
    let initial = total.map(initial_level);
    let mut reasons = vec![];
    let final_level = if coma {
        reasons.push(Reason::Coma);
        cfg.coma_level
    } else {
        // Complete here: without a coma every item is required.
        let initial = initial.unwrap_or(4);
        let counts = input.risk_events_30d.counts().map(|c| c.1);
        let (bump, mental, events) = change_bump(
            input.dementia_confirmed || input.psychiatric_dx_by_specialist,
            cfg.risk_count_mode.count(&counts),
            cfg.stack_adjustments,
        );
        if mental {
            reasons.push(Reason::MentalDisorder);
        }
        if let Some(count) = events {
            reasons.push(Reason::RiskEvents { count });
        }
        (initial + bump).min(4)
    };
    Ok(Outcome {
        standard: STANDARD,
        domain_scores,
        total,
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

    #[test]
    fn input_is_written_without_defaults_and_read_back_whole() {
        let plain = all_max();
        let json = serde_json::to_string(&plain).unwrap();
        assert!(
            json.starts_with(r#"{"items":{"#) && json.ends_with("}}"),
            "{json}"
        );
        for absent in ["options", "coma", "dementia", "psychiatric", "risk_events"] {
            assert!(!json.contains(absent), "{absent} in {json}");
        }
        assert_eq!(serde_json::from_str::<Input>(&json).unwrap(), plain);
        // As records were stored before: every field written out.
        let full = json.trim_end_matches('}').to_string()
            + r#"},"options":{},"coma":false,"dementia_confirmed":false,"psychiatric_dx_by_specialist":false,"risk_events_30d":{"fall":0,"wandering":0,"choking":0,"suicide_self_harm":0,"other":0}}"#;
        assert_eq!(serde_json::from_str::<Input>(&full).unwrap(), plain);
        // Anything not at its default is written.
        let mut marked = plain.clone();
        marked.coma = true;
        marked.risk_events_30d.fall = 2;
        marked.options.insert("B3.9".into(), "coma".into());
        let json = serde_json::to_string(&marked).unwrap();
        for present in [
            r#""coma":true"#,
            r#""fall":2"#,
            r#""options":{"B3.9":"coma"}"#,
        ] {
            assert!(json.contains(present), "{present} not in {json}");
        }
        assert_eq!(serde_json::from_str::<Input>(&json).unwrap(), marked);
    }

    fn all_max() -> Input {
        Input {
            items: ITEMS
                .iter()
                .map(|i| (i.code.to_string(), i.max()))
                .collect(),
            ..Default::default()
        }
    }

    /// An input whose total is `t`, lowering items from the end of the form.
    fn with_total(t: u8) -> Input {
        let mut inp = all_max();
        let mut excess = 90 - t;
        for def in ITEMS.iter().rev() {
            let cut = excess.min(def.max());
            inp.items.insert(def.code.into(), def.max() - cut);
            excess -= cut;
        }
        assert_eq!(excess, 0);
        inp
    }

    fn run(i: &Input) -> Outcome {
        assess(i, &Config::default()).unwrap()
    }

    #[test]
    fn table_arithmetic() {
        let mut max = [0u8; 4];
        for i in &ITEMS {
            max[i.domain.index()] += i.max();
        }
        assert_eq!(max, [32, 15, 28, 15]);
        assert_eq!(ITEMS.len(), 26);
    }

    #[test]
    fn vector_1_all_max() {
        let o = run(&all_max());
        assert_eq!(o.domain_scores, [32, 15, 28, 15]);
        assert_eq!(
            (o.total, o.initial_level, o.final_level),
            (Some(90), Some(0), 0)
        );
        assert!(o.reasons.is_empty());
        assert_eq!(o.final_level_name(), "能力完好");
    }

    #[test]
    fn vector_2_stairs() {
        let mut i = all_max();
        i.items.insert("B2.4".into(), 2);
        let o = run(&i);
        assert_eq!(o.domain_scores, [32, 14, 28, 15]);
        assert_eq!(
            (o.total, o.initial_level, o.final_level),
            (Some(89), Some(1), 1)
        );
    }

    #[test]
    fn vector_3_boundaries() {
        for (t, lvl) in [(66, 1), (65, 2), (46, 2), (45, 3), (30, 3), (29, 4), (0, 4)] {
            let o = run(&with_total(t));
            assert_eq!(o.total, Some(t));
            assert_eq!(
                (o.initial_level, o.final_level),
                (Some(lvl), lvl),
                "total {t}"
            );
        }
    }

    #[test]
    fn vectors_4_to_8_change_rules() {
        let mut i = with_total(70);
        i.dementia_confirmed = true;
        let o = run(&i);
        assert_eq!((o.initial_level, o.final_level), (Some(1), 2));
        assert_eq!(o.reasons, vec![Reason::MentalDisorder]);

        let mut i = with_total(70);
        i.risk_events_30d = RiskEvents {
            fall: 1,
            choking: 1,
            ..Default::default()
        };
        assert_eq!(run(&i).final_level, 2);
        assert_eq!(run(&i).reasons, vec![Reason::RiskEvents { count: 2 }]);
        let per_type = Config {
            risk_count_mode: RiskCountMode::PerType,
            ..Default::default()
        };
        assert_eq!(assess(&i, &per_type).unwrap().final_level, 1);

        let mut i = with_total(70);
        i.dementia_confirmed = true;
        i.risk_events_30d.fall = 2;
        assert_eq!(run(&i).final_level, 2);
        let stack = Config {
            stack_adjustments: true,
            ..Default::default()
        };
        assert_eq!(assess(&i, &stack).unwrap().final_level, 3);

        let mut i = with_total(50);
        i.risk_events_30d.fall = 3;
        let o = run(&i);
        assert_eq!((o.initial_level, o.final_level), (Some(2), 3));

        let mut i = with_total(20);
        i.dementia_confirmed = true;
        let o = run(&i);
        assert_eq!((o.initial_level, o.final_level), (Some(4), 4));
    }

    #[test]
    fn vectors_9_10_coma_and_stupor() {
        let mut i = with_total(88);
        i.coma = true;
        let o = run(&i);
        assert_eq!(
            (o.total, o.initial_level, o.final_level),
            (Some(88), Some(1), 4)
        );
        assert_eq!(o.reasons, vec![Reason::Coma]);
        let b39 = Config {
            coma_level: 3,
            ..Default::default()
        };
        assert_eq!(assess(&i, &b39).unwrap().final_level, 3);
        // Stupor scores 0 like coma but is not a coma.
        let mut i = all_max();
        i.items.insert("B3.9".into(), 0);
        i.options.insert("B3.9".into(), "stupor".into());
        let o = run(&i);
        assert_eq!((o.total, o.final_level), (Some(88), 1));
        assert!(o.reasons.is_empty());
        // The coma option implies R1 and warns when A.5.11 disagrees.
        i.options.insert("B3.9".into(), "coma".into());
        let o = run(&i);
        assert_eq!(o.final_level, 4);
        assert_eq!(o.warnings.len(), 1);
    }

    #[test]
    fn coma_may_leave_items_out() {
        let i = Input {
            items: [("B1.1".to_string(), 0u8)].into_iter().collect(),
            coma: true,
            ..Default::default()
        };
        let o = run(&i);
        assert_eq!((o.total, o.initial_level, o.final_level), (None, None, 4));
        let strict = Config {
            allow_incomplete_when_coma: false,
            ..Default::default()
        };
        assert!(matches!(
            assess(&i, &strict),
            Err(InputError::MissingItem { .. })
        ));
    }

    #[test]
    fn invalid_inputs_name_the_item() {
        let mut i = all_max();
        i.items.insert("B2.4".into(), 4);
        let e = assess(&i, &Config::default()).unwrap_err();
        assert!(
            e.to_string().contains("B2.4") && e.to_string().contains("3、2、1、0"),
            "{e}"
        );
        let mut i = all_max();
        i.items.remove("B4.5");
        assert!(
            assess(&i, &Config::default())
                .unwrap_err()
                .to_string()
                .contains("B4.5")
        );
        let mut i = all_max();
        i.items.insert("B5.1".into(), 1);
        assert_eq!(
            assess(&i, &Config::default()).unwrap_err(),
            InputError::UnknownItem("B5.1".into())
        );
        let mut i = all_max();
        i.risk_events_30d.other = 4;
        assert!(matches!(
            assess(&i, &Config::default()),
            Err(InputError::RiskCount("other"))
        ));
    }

    fn any_input() -> impl Strategy<Value = Input> {
        let items: Vec<_> = ITEMS
            .iter()
            .map(|d| {
                proptest::sample::select(d.options.iter().map(|o| o.score).collect::<Vec<_>>())
            })
            .collect();
        (items, any::<bool>(), 0u8..=3, 0u8..=3).prop_map(|(scores, dem, fall, other)| Input {
            items: ITEMS
                .iter()
                .zip(scores)
                .map(|(d, s)| (d.code.to_string(), s))
                .collect(),
            dementia_confirmed: dem,
            risk_events_30d: RiskEvents {
                fall,
                other,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    proptest! {
        #[test]
        fn bounds(i in any_input()) {
            let o = run(&i);
            let t = o.total.unwrap();
            prop_assert!(t <= 90);
            prop_assert_eq!(o.domain_scores.iter().sum::<u8>(), t);
            prop_assert!(o.final_level <= 4);
            prop_assert!(o.final_level >= o.initial_level.unwrap());
        }

        /// Raising any item never lowers ability (never raises the level number).
        #[test]
        fn monotone(i in any_input(), k in 0usize..26) {
            let def = &ITEMS[k];
            let cur = i.items[def.code];
            if let Some(up) = def.options.iter().map(|o| o.score).filter(|s| *s > cur).min() {
                let mut j = i.clone();
                j.items.insert(def.code.into(), up);
                prop_assert!(run(&j).final_level <= run(&i).final_level);
                prop_assert!(run(&j).initial_level <= run(&i).initial_level);
            }
        }
    }
}

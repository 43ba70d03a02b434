//! Eligibility rules of the basic-service catalogue (基本养老服务目录清单): a small typed language an
//! officer writes, checked when saved and evaluated over the whole registry.
//!
//! ```text
//! 年龄 >= 80 且 状态 = 在册 且 (经济状况 属于 [特困, 低保] 或 能力等级 >= 3)
//! age >= 80 and status = active and not living_status = with_children
//! 居住地 位于 320682104000
//! ```
//!
//! Fields and values may be written in Chinese or as codes; `且/或/非/属于/位于` are `and/or/not/in/
//! within`; full-width brackets and commas are accepted (Chinese input methods produce them).
//! Every comparison is typed: a field is compared only with values of its type, enumerated fields
//! only with their listed values, and a rule that does not check is refused with the column and a
//! Chinese message. Evaluation is a pure function of the elder's [`Facts`] and the evaluation date;
//! [`Rule::explain`] returns the same decision with reasons in plain Chinese ("年龄 78 岁，未满 80
//! 岁"), and [`Rule::holds`] is the allocation-free path the whole-registry job uses.
//!
//! A missing value (no ability assessment, economic status not recorded) makes the comparison false
//! whatever its operator, and the reason says that the value is missing; `非` turns that around.

use crate::assessment::LEVEL_NAMES;
use crate::citizen_id::{Sex, age_on};
use crate::codes;
use chrono::NaiveDate;
use serde::Serialize;
use std::fmt::Write as _;

/// What the rules can see of one elder. Codes as stored by the registry.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub birth_date: NaiveDate,
    pub sex: Option<Sex>,
    pub residence_region: &'a str,
    pub hukou_region: Option<&'a str>,
    /// active / deceased / moved_out
    pub status: &'a str,
    pub living_status: Option<&'a str>,
    pub economic_status: Option<&'a str>,
    pub family_planning_special: Option<&'a str>,
    pub disability_grade: Option<i64>,
    pub entitled_veteran_family: Option<bool>,
    /// The ability level of a valid assessment on the evaluation date; `None` without one.
    pub ability_level: Option<i64>,
    pub death_date: Option<NaiveDate>,
    /// Names of the lists (名单) the elder is on, e.g. 重点帮扶对象.
    pub lists: &'a [String],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Age,
    BirthDate,
    Sex,
    ResidenceRegion,
    HukouRegion,
    Status,
    LivingStatus,
    EconomicStatus,
    FamilyPlanningSpecial,
    DisabilityGrade,
    EntitledVeteranFamily,
    AbilityLevel,
    DeathDate,
    Lists,
}

#[derive(Debug, Clone, Copy)]
enum Ty {
    Int {
        unit: &'static str,
        min: i64,
        max: i64,
    },
    Date,
    Enum(&'static [(&'static str, &'static str)]),
    Region,
    Bool,
    /// Membership in named lists (名单 包含 X).
    List,
}

struct FieldDef {
    field: Field,
    code: &'static str,
    zh: &'static str,
    ty: Ty,
}

const FIELDS: &[FieldDef] = &[
    FieldDef {
        field: Field::Age,
        code: "age",
        zh: "年龄",
        ty: Ty::Int {
            unit: "岁",
            min: 0,
            max: 150,
        },
    },
    FieldDef {
        field: Field::BirthDate,
        code: "birth_date",
        zh: "出生日期",
        ty: Ty::Date,
    },
    FieldDef {
        field: Field::Sex,
        code: "sex",
        zh: "性别",
        ty: Ty::Enum(codes::SEX),
    },
    FieldDef {
        field: Field::ResidenceRegion,
        code: "residence_region",
        zh: "居住地",
        ty: Ty::Region,
    },
    FieldDef {
        field: Field::HukouRegion,
        code: "hukou_region",
        zh: "户籍地",
        ty: Ty::Region,
    },
    FieldDef {
        field: Field::Status,
        code: "status",
        zh: "状态",
        ty: Ty::Enum(codes::ELDER_STATUS),
    },
    FieldDef {
        field: Field::LivingStatus,
        code: "living_status",
        zh: "居住状况",
        ty: Ty::Enum(codes::LIVING_STATUS),
    },
    FieldDef {
        field: Field::EconomicStatus,
        code: "economic_status",
        zh: "经济状况",
        ty: Ty::Enum(codes::ECONOMIC_STATUS),
    },
    FieldDef {
        field: Field::FamilyPlanningSpecial,
        code: "family_planning_special",
        zh: "计生特殊家庭",
        ty: Ty::Enum(codes::FAMILY_PLANNING),
    },
    FieldDef {
        field: Field::DisabilityGrade,
        code: "disability_grade",
        zh: "残疾等级",
        ty: Ty::Int {
            unit: "级",
            min: 1,
            max: 4,
        },
    },
    FieldDef {
        field: Field::EntitledVeteranFamily,
        code: "entitled_veteran_family",
        zh: "优抚对象",
        ty: Ty::Bool,
    },
    FieldDef {
        field: Field::AbilityLevel,
        code: "ability_level",
        zh: "能力等级",
        ty: Ty::Int {
            unit: "级",
            min: 0,
            max: 4,
        },
    },
    FieldDef {
        field: Field::DeathDate,
        code: "death_date",
        zh: "死亡日期",
        ty: Ty::Date,
    },
    FieldDef {
        field: Field::Lists,
        code: "lists",
        zh: "名单",
        ty: Ty::List,
    },
];

fn def(f: Field) -> &'static FieldDef {
    FIELDS
        .iter()
        .find(|d| d.field == f)
        .expect("every field has a definition")
}

/// One field as the rule editor lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FieldHelp {
    pub code: &'static str,
    pub zh: &'static str,
    /// 整数 / 日期 / 选项 / 区划 / 是否
    pub kind: &'static str,
    pub operators: &'static str,
    /// The values an enumerated field takes, in Chinese.
    pub values: Vec<&'static str>,
}

pub fn field_help() -> Vec<FieldHelp> {
    FIELDS
        .iter()
        .map(|d| {
            let (kind, operators, values) = match d.ty {
                Ty::Int { .. } => ("整数", "= != < <= > >= 属于", vec![]),
                Ty::Date => ("日期", "= != < <= > >=", vec![]),
                Ty::Enum(list) => ("选项", "= != 属于", list.iter().map(|x| x.1).collect()),
                Ty::Region => ("区划", "= != 位于", vec![]),
                Ty::Bool => ("是否", "= !=", vec!["是", "否"]),
                Ty::List => ("名单", "包含", vec![]),
            };
            let values = if d.field == Field::AbilityLevel {
                LEVEL_NAMES.to_vec()
            } else {
                values
            };
            FieldHelp {
                code: d.code,
                zh: d.zh,
                kind,
                operators,
                values,
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn test<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// A checked rule: the typed tree, and the text it was written as.
#[derive(Debug, Clone)]
pub struct Rule {
    pub source: String,
    expr: Expr,
}

#[derive(Debug, Clone)]
enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
    Int {
        f: Field,
        op: Op,
        v: i64,
    },
    IntIn {
        f: Field,
        vs: Vec<i64>,
    },
    Date {
        f: Field,
        op: Op,
        v: NaiveDate,
    },
    /// `=`, `!=` (negate) and `属于` on an enumerated field; values are codes.
    Enum {
        f: Field,
        vs: Vec<&'static str>,
        negate: bool,
    },
    /// `位于` (a subtree: prefix of the code) or `=` (the full 12-digit code, as a prefix).
    Region {
        f: Field,
        prefixes: Vec<String>,
        negate: bool,
    },
    Bool {
        f: Field,
        v: bool,
        negate: bool,
    },
    /// On at least one of the named lists.
    List {
        names: Vec<String>,
    },
}

/// A rule that does not parse or check: where (1-based character column) and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("第 {column} 个字符处：{message}")]
pub struct RuleError {
    pub column: usize,
    pub message: String,
}

/// One reason of a decision: a fact about the elder in plain words, and whether it speaks for (true)
/// or against (false) the eligibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Reason {
    pub ok: bool,
    pub text: String,
}

// ---------------------------------------------------------------------------------------------
// Lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(i64),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Op(Op),
    And,
    Or,
    Not,
    In,
    Within,
    Contains,
}

/// Chinese keywords can sit between CJK names without spaces ("年龄>=80且状态=在册"), so a CJK run
/// is cut wherever one starts. Longer keywords first.
const CJK_KEYWORDS: &[(&str, Tok)] = &[
    ("并且", Tok::And),
    ("或者", Tok::Or),
    ("属于", Tok::In),
    ("位于", Tok::Within),
    ("包含", Tok::Contains),
    ("且", Tok::And),
    ("或", Tok::Or),
    ("非", Tok::Not),
];

fn is_cjk(c: char) -> bool {
    ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c)
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, RuleError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let err = |i: usize, m: String| RuleError {
        column: i + 1,
        message: m,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() || c == '\u{3000}' => i += 1,
            '(' | '（' => {
                out.push((start, Tok::LParen));
                i += 1
            }
            ')' | '）' => {
                out.push((start, Tok::RParen));
                i += 1
            }
            '[' | '【' => {
                out.push((start, Tok::LBracket));
                i += 1
            }
            ']' | '】' => {
                out.push((start, Tok::RBracket));
                i += 1
            }
            ',' | '，' | '、' => {
                out.push((start, Tok::Comma));
                i += 1
            }
            '=' | '＝' => {
                i += 1;
                if chars.get(i) == Some(&'=') {
                    i += 1;
                }
                out.push((start, Tok::Op(Op::Eq)));
            }
            '!' | '！' => {
                if chars.get(i + 1) == Some(&'=') || chars.get(i + 1) == Some(&'＝') {
                    out.push((start, Tok::Op(Op::Ne)));
                    i += 2;
                } else {
                    return Err(err(i, "“!” 后应接 “=”，表示不等于".into()));
                }
            }
            '≠' => {
                out.push((start, Tok::Op(Op::Ne)));
                i += 1
            }
            '<' | '＜' => {
                i += 1;
                match chars.get(i) {
                    Some('=') => {
                        i += 1;
                        out.push((start, Tok::Op(Op::Le)))
                    }
                    Some('>') => {
                        i += 1;
                        out.push((start, Tok::Op(Op::Ne)))
                    }
                    _ => out.push((start, Tok::Op(Op::Lt))),
                }
            }
            '>' | '＞' => {
                i += 1;
                if chars.get(i) == Some(&'=') {
                    i += 1;
                    out.push((start, Tok::Op(Op::Ge)))
                } else {
                    out.push((start, Tok::Op(Op::Gt)))
                }
            }
            '≤' => {
                out.push((start, Tok::Op(Op::Le)));
                i += 1
            }
            '≥' => {
                out.push((start, Tok::Op(Op::Ge)));
                i += 1
            }
            '\'' | '"' | '“' | '‘' | '「' => {
                let close = match c {
                    '“' => '”',
                    '‘' => '’',
                    '「' => '」',
                    x => x,
                };
                i += 1;
                let s0 = i;
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                if i == chars.len() {
                    return Err(err(start, "引号没有配对".into()));
                }
                out.push((start, Tok::Str(chars[s0..i].iter().collect())));
                i += 1;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '-') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                // A bare date or a 12-digit region code is a value like a quoted one.
                match text.parse::<i64>() {
                    Ok(n) if text.len() < 12 => out.push((start, Tok::Num(n))),
                    _ => out.push((start, Tok::Str(text))),
                }
            }
            c if is_cjk(c) => {
                let mut word = String::new();
                while i < chars.len()
                    && (is_cjk(chars[i]) || chars[i].is_ascii_alphanumeric() || chars[i] == '_')
                {
                    let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
                    if let Some((kw, tok)) =
                        CJK_KEYWORDS.iter().find(|(kw, _)| rest.starts_with(kw))
                    {
                        if !word.is_empty() {
                            out.push((
                                i - word.chars().count(),
                                Tok::Ident(std::mem::take(&mut word)),
                            ));
                        }
                        out.push((i, tok.clone()));
                        i += kw.chars().count();
                        continue;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if !word.is_empty() {
                    out.push((i - word.chars().count(), Tok::Ident(word)));
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                let w: String = chars[start..i].iter().collect();
                let tok = match w.to_ascii_lowercase().as_str() {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "in" => Tok::In,
                    "within" => Tok::Within,
                    "contains" => Tok::Contains,
                    _ => Tok::Ident(w),
                };
                out.push((start, tok));
            }
            other => return Err(err(i, format!("不认识的符号“{other}”"))),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parsing and type checking in one pass: every comparison is checked as it is read.

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

#[derive(Debug)]
enum Lit {
    Num(i64),
    Str(String),
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.1)
    }
    fn col(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.0).unwrap_or(self.end)
    }
    fn err(&self, m: impl Into<String>) -> RuleError {
        RuleError {
            column: self.col() + 1,
            message: m.into(),
        }
    }
    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, RuleError> {
        let mut xs = vec![self.and()?];
        while self.eat(&Tok::Or) {
            xs.push(self.and()?);
        }
        Ok(if xs.len() == 1 {
            xs.pop().expect("one")
        } else {
            Expr::Any(xs)
        })
    }
    fn and(&mut self) -> Result<Expr, RuleError> {
        let mut xs = vec![self.not()?];
        while self.eat(&Tok::And) {
            xs.push(self.not()?);
        }
        Ok(if xs.len() == 1 {
            xs.pop().expect("one")
        } else {
            Expr::All(xs)
        })
    }
    fn not(&mut self) -> Result<Expr, RuleError> {
        if self.eat(&Tok::Not) {
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Expr, RuleError> {
        if self.eat(&Tok::LParen) {
            let e = self.or()?;
            if !self.eat(&Tok::RParen) {
                return Err(self.err("缺少右括号“)”"));
            }
            return Ok(e);
        }
        let fcol = self.col();
        let name = match self.peek() {
            Some(Tok::Ident(n)) => n.clone(),
            None => return Err(self.err("规则不完整：此处应有一个字段，如“年龄”")),
            Some(_) => return Err(self.err("此处应有一个字段，如“年龄”“经济状况”")),
        };
        let d = FIELDS
            .iter()
            .find(|d| d.zh == name || d.code.eq_ignore_ascii_case(&name))
            .ok_or_else(|| {
                let all: Vec<&str> = FIELDS.iter().map(|d| d.zh).collect();
                RuleError {
                    column: fcol + 1,
                    message: format!("不认识的字段“{name}”，可用：{}", all.join("、")),
                }
            })?;
        self.pos += 1;
        let opcol = self.col();
        let op = match self.peek() {
            Some(Tok::Op(o)) => Some(*o),
            Some(Tok::In) => None,
            Some(Tok::Contains) => {
                self.pos += 1;
                if !matches!(d.ty, Ty::List) {
                    return Err(RuleError {
                        column: opcol + 1,
                        message: format!("“包含”只能用于名单，不能用于“{}”", d.zh),
                    });
                }
                let mut names = vec![];
                for (c, v) in self.values()? {
                    let n = match v {
                        Lit::Str(s) => s,
                        Lit::Num(n) => n.to_string(),
                    };
                    if n.trim().is_empty() || n.chars().count() > 30 {
                        return Err(RuleError {
                            column: c + 1,
                            message: "名单名称应为 1–30 个字".into(),
                        });
                    }
                    names.push(n.trim().to_string());
                }
                return Ok(Expr::List { names });
            }
            Some(Tok::Within) => {
                self.pos += 1;
                if !matches!(d.ty, Ty::Region) {
                    return Err(RuleError {
                        column: opcol + 1,
                        message: format!("“位于”只能用于居住地、户籍地，不能用于“{}”", d.zh),
                    });
                }
                let vals = self.values()?;
                return self.region(d, vals, true, false);
            }
            _ => {
                return Err(self.err(format!(
                    "“{}”后应有比较符号（= != < <= > >=）或“属于”",
                    d.zh
                )));
            }
        };
        self.pos += 1;
        let vals = match op {
            Some(_) => vec![self.value()?],
            None => self.values()?,
        };
        let bad_op = |what: &str| RuleError {
            column: opcol + 1,
            message: format!("“{}”是{what}，只能用 {}", d.zh, what_ops(d.ty)),
        };
        match d.ty {
            Ty::Int { unit, min, max } => {
                let mut ns = vec![];
                for (c, v) in &vals {
                    let n = match (v, d.field) {
                        (Lit::Num(n), _) => *n,
                        (Lit::Str(s), Field::AbilityLevel) => LEVEL_NAMES
                            .iter()
                            .position(|x| x == s)
                            .map(|p| p as i64)
                            .ok_or_else(|| RuleError {
                                column: c + 1,
                                message: format!("能力等级应为 0–4 或 {}", LEVEL_NAMES.join("、")),
                            })?,
                        _ => {
                            return Err(RuleError {
                                column: c + 1,
                                message: format!("“{}”应与整数比较", d.zh),
                            });
                        }
                    };
                    if n < min || n > max {
                        return Err(RuleError {
                            column: c + 1,
                            message: format!("“{}”的取值应在 {min}–{max}{unit} 之间", d.zh),
                        });
                    }
                    ns.push(n);
                }
                Ok(match op {
                    Some(op) => Expr::Int {
                        f: d.field,
                        op,
                        v: ns[0],
                    },
                    None => Expr::IntIn { f: d.field, vs: ns },
                })
            }
            Ty::Date => {
                let Some(op) = op else {
                    return Err(bad_op("日期"));
                };
                let (c, v) = &vals[0];
                let s = match v {
                    Lit::Str(s) => s,
                    Lit::Num(n) => &n.to_string(),
                };
                let v = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| RuleError {
                    column: c + 1,
                    message: format!("日期“{s}”无效，应写成 YYYY-MM-DD"),
                })?;
                Ok(Expr::Date { f: d.field, op, v })
            }
            Ty::Enum(list) => {
                let negate = match op {
                    None | Some(Op::Eq) => false,
                    Some(Op::Ne) => true,
                    _ => return Err(bad_op("选项")),
                };
                let mut vs = vec![];
                for (c, v) in &vals {
                    let s = match v {
                        Lit::Str(s) => s.clone(),
                        Lit::Num(n) => n.to_string(),
                    };
                    let code = list
                        .iter()
                        .find(|(code, zh)| *zh == s || *code == s)
                        .map(|x| x.0)
                        .ok_or_else(|| RuleError {
                            column: c + 1,
                            message: format!(
                                "“{}”没有取值“{s}”，可选：{}",
                                d.zh,
                                list.iter().map(|x| x.1).collect::<Vec<_>>().join("、")
                            ),
                        })?;
                    vs.push(code);
                }
                Ok(Expr::Enum {
                    f: d.field,
                    vs,
                    negate,
                })
            }
            Ty::Region => match op {
                Some(Op::Eq) => self.region(d, vals, false, false),
                Some(Op::Ne) => self.region(d, vals, false, true),
                _ => Err(bad_op("区划")),
            },
            Ty::List => Err(RuleError {
                column: opcol + 1,
                message: "“名单”只能用“包含”，如：名单 包含 重点帮扶对象".into(),
            }),
            Ty::Bool => {
                let negate = match op {
                    Some(Op::Eq) => false,
                    Some(Op::Ne) => true,
                    _ => return Err(bad_op("是否")),
                };
                let (c, v) = &vals[0];
                let v = match v {
                    Lit::Str(s) if matches!(s.as_str(), "是" | "true" | "TRUE" | "True") => true,
                    Lit::Str(s) if matches!(s.as_str(), "否" | "false" | "FALSE" | "False") => {
                        false
                    }
                    Lit::Num(1) => true,
                    Lit::Num(0) => false,
                    _ => {
                        return Err(RuleError {
                            column: c + 1,
                            message: format!("“{}”应与 是 或 否 比较", d.zh),
                        });
                    }
                };
                Ok(Expr::Bool {
                    f: d.field,
                    v,
                    negate,
                })
            }
        }
    }

    fn region(
        &self,
        d: &FieldDef,
        vals: Vec<(usize, Lit)>,
        within: bool,
        negate: bool,
    ) -> Result<Expr, RuleError> {
        let mut prefixes = vec![];
        for (c, v) in vals {
            let s = match v {
                Lit::Str(s) => s,
                Lit::Num(n) => n.to_string(),
            };
            let code = crate::RegionCode::parse(&s).map_err(|e| RuleError {
                column: c + 1,
                message: format!("区划代码“{s}”无效：{e}"),
            })?;
            prefixes.push(if within {
                code.prefix().to_string()
            } else {
                code.as_str().to_string()
            });
        }
        Ok(Expr::Region {
            f: d.field,
            prefixes,
            negate,
        })
    }

    fn value(&mut self) -> Result<(usize, Lit), RuleError> {
        let c = self.col();
        let v = match self.peek() {
            Some(Tok::Num(n)) => Lit::Num(*n),
            Some(Tok::Str(s)) | Some(Tok::Ident(s)) => Lit::Str(s.clone()),
            None => return Err(self.err("规则不完整：比较符号后应有一个值")),
            Some(_) => return Err(self.err("此处应有一个值")),
        };
        self.pos += 1;
        Ok((c, v))
    }

    /// `[a, b, c]`, or one value.
    fn values(&mut self) -> Result<Vec<(usize, Lit)>, RuleError> {
        if !self.eat(&Tok::LBracket) {
            return Ok(vec![self.value()?]);
        }
        let mut vs = vec![self.value()?];
        while self.eat(&Tok::Comma) {
            vs.push(self.value()?);
        }
        if !self.eat(&Tok::RBracket) {
            return Err(self.err("缺少右方括号“]”"));
        }
        Ok(vs)
    }
}

fn what_ops(ty: Ty) -> &'static str {
    match ty {
        Ty::Int { .. } => "= != < <= > >= 属于",
        Ty::Date => "= != < <= > >=",
        Ty::Enum(_) => "= != 属于",
        Ty::Region => "= != 位于",
        Ty::Bool => "= !=",
        Ty::List => "包含",
    }
}

impl Rule {
    /// Parse and type-check a rule. An empty rule is refused: an item for everyone says so, e.g.
    /// `状态 = 在册`.
    pub fn parse(source: &str) -> Result<Rule, RuleError> {
        let toks = lex(source)?;
        if toks.is_empty() {
            return Err(RuleError {
                column: 1,
                message: "规则为空；适用于所有人时请写“状态 = 在册”".into(),
            });
        }
        let mut p = Parser {
            toks,
            pos: 0,
            end: source.chars().count(),
        };
        let expr = p.or()?;
        if p.pos < p.toks.len() {
            return Err(p.err("此处多出内容；多个条件之间请用“且”或“或”连接"));
        }
        Ok(Rule {
            source: source.trim().to_string(),
            expr,
        })
    }

    /// The list names the rule refers to (the store checks that they exist).
    pub fn lists(&self) -> Vec<String> {
        fn walk(e: &Expr, out: &mut Vec<String>) {
            match e {
                Expr::All(xs) | Expr::Any(xs) => xs.iter().for_each(|x| walk(x, out)),
                Expr::Not(x) => walk(x, out),
                Expr::List { names } => out.extend(names.iter().cloned()),
                _ => {}
            }
        }
        let mut out = vec![];
        walk(&self.expr, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// The decision alone, without reasons: the path of the whole-registry evaluation.
    pub fn holds(&self, f: &Facts, on: NaiveDate) -> bool {
        holds(&self.expr, f, on)
    }

    /// The decision with its reasons. `region_name` names a region code (or prefix) for the reasons.
    pub fn explain(
        &self,
        f: &Facts,
        on: NaiveDate,
        region_name: &dyn Fn(&str) -> String,
    ) -> (bool, Vec<Reason>) {
        explain(&self.expr, f, on, region_name)
    }
}

fn int_of(f: Field, x: &Facts, on: NaiveDate) -> Option<i64> {
    match f {
        Field::Age => Some(age_on(x.birth_date, on) as i64),
        Field::DisabilityGrade => x.disability_grade,
        Field::AbilityLevel => x.ability_level,
        _ => None,
    }
}
fn date_of(f: Field, x: &Facts) -> Option<NaiveDate> {
    match f {
        Field::BirthDate => Some(x.birth_date),
        Field::DeathDate => x.death_date,
        _ => None,
    }
}
fn enum_of<'a>(f: Field, x: &Facts<'a>) -> Option<&'a str> {
    match f {
        Field::Sex => x.sex.map(|s| match s {
            Sex::Male => "male",
            Sex::Female => "female",
        }),
        Field::Status => Some(x.status),
        Field::LivingStatus => x.living_status,
        Field::EconomicStatus => x.economic_status,
        Field::FamilyPlanningSpecial => x.family_planning_special,
        _ => None,
    }
}
fn region_of<'a>(f: Field, x: &Facts<'a>) -> Option<&'a str> {
    match f {
        Field::ResidenceRegion => Some(x.residence_region),
        Field::HukouRegion => x.hukou_region,
        _ => None,
    }
}
fn bool_of(f: Field, x: &Facts) -> Option<bool> {
    match f {
        Field::EntitledVeteranFamily => x.entitled_veteran_family,
        _ => None,
    }
}

fn holds(e: &Expr, x: &Facts, on: NaiveDate) -> bool {
    match e {
        Expr::All(xs) => xs.iter().all(|e| holds(e, x, on)),
        Expr::Any(xs) => xs.iter().any(|e| holds(e, x, on)),
        Expr::Not(e) => !holds(e, x, on),
        Expr::Int { f, op, v } => int_of(*f, x, on).is_some_and(|a| op.test(a, *v)),
        Expr::IntIn { f, vs } => int_of(*f, x, on).is_some_and(|a| vs.contains(&a)),
        Expr::Date { f, op, v } => date_of(*f, x).is_some_and(|a| op.test(a, *v)),
        Expr::Enum { f, vs, negate } => enum_of(*f, x).is_some_and(|a| vs.contains(&a) != *negate),
        Expr::Region {
            f,
            prefixes,
            negate,
        } => region_of(*f, x)
            .is_some_and(|a| prefixes.iter().any(|p| a.starts_with(p.as_str())) != *negate),
        Expr::Bool { f, v, negate } => bool_of(*f, x).is_some_and(|a| (a == *v) != *negate),
        Expr::List { names } => x.lists.iter().any(|l| names.contains(l)),
    }
}

fn zh_of(list: &[(&str, &'static str)], code: &str) -> &'static str {
    list.iter()
        .find(|x| x.0 == code)
        .map(|x| x.1)
        .unwrap_or("未知")
}

fn explain(
    e: &Expr,
    x: &Facts,
    on: NaiveDate,
    names: &dyn Fn(&str) -> String,
) -> (bool, Vec<Reason>) {
    match e {
        Expr::All(xs) => {
            let parts: Vec<_> = xs.iter().map(|e| explain(e, x, on, names)).collect();
            let ok = parts.iter().all(|p| p.0);
            // Eligible: every condition met, all said. Not eligible: only the unmet ones matter.
            let rs = parts
                .into_iter()
                .filter(|p| ok || !p.0)
                .flat_map(|p| p.1)
                .collect();
            (ok, rs)
        }
        Expr::Any(xs) => {
            let parts: Vec<_> = xs.iter().map(|e| explain(e, x, on, names)).collect();
            match parts.iter().position(|p| p.0) {
                Some(i) => (true, parts.into_iter().nth(i).expect("found").1),
                None => (false, parts.into_iter().flat_map(|p| p.1).collect()),
            }
        }
        Expr::Not(e) => {
            let (ok, rs) = explain(e, x, on, names);
            (
                !ok,
                rs.into_iter()
                    .map(|r| Reason {
                        ok: !r.ok,
                        text: r.text,
                    })
                    .collect(),
            )
        }
        leaf => {
            let ok = holds(leaf, x, on);
            (
                ok,
                vec![Reason {
                    ok,
                    text: leaf_text(leaf, ok, x, on, names),
                }],
            )
        }
    }
}

/// The plain-words reason of one comparison: the elder's value, then how it stands to the limit.
fn leaf_text(
    e: &Expr,
    ok: bool,
    x: &Facts,
    on: NaiveDate,
    names: &dyn Fn(&str) -> String,
) -> String {
    let mut s = String::new();
    match e {
        Expr::Int { f, op, v } => {
            let d = def(*f);
            let Some(a) = int_of(*f, x, on) else {
                return missing(*f);
            };
            if *f == Field::AbilityLevel {
                let n = |l: i64| LEVEL_NAMES[l.clamp(0, 4) as usize];
                let _ = write!(s, "能力等级为{}，", n(a));
                let (yes, no) = match op {
                    Op::Ge => ("达到", "未达到"),
                    Op::Gt => ("重于", "不重于"),
                    Op::Lt => ("轻于", "不轻于"),
                    Op::Le => ("不重于", "重于"),
                    Op::Eq => ("为", "不是"),
                    Op::Ne => ("不是", "是"),
                };
                let tail = if *op == Op::Ge && *v < 4 {
                    "及以上"
                } else {
                    ""
                };
                let _ = write!(s, "{}{}{tail}", if ok { yes } else { no }, n(*v));
                return s;
            }
            let unit = match d.ty {
                Ty::Int { unit, .. } => unit,
                _ => "",
            };
            let _ = write!(s, "{} {a} {unit}，", d.zh);
            let (yes, no) = match op {
                Op::Ge => ("满", "未满"),
                Op::Gt => ("超过", "未超过"),
                Op::Lt => ("未满", "已满"),
                Op::Le => ("不超过", "超过"),
                Op::Eq => ("为", "不是"),
                Op::Ne => ("不是", "是"),
            };
            let _ = write!(s, "{} {v} {unit}", if ok { yes } else { no });
        }
        Expr::IntIn { f, vs } => {
            let d = def(*f);
            let Some(a) = int_of(*f, x, on) else {
                return missing(*f);
            };
            let list: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
            let _ = write!(
                s,
                "{} {a}，{}属于 {}",
                d.zh,
                if ok { "" } else { "不" },
                list.join("、")
            );
        }
        Expr::Date { f, op, v } => {
            let d = def(*f);
            let Some(a) = date_of(*f, x) else {
                return missing(*f);
            };
            let (yes, no) = match op {
                Op::Lt => ("早于", "不早于"),
                Op::Le => ("不晚于", "晚于"),
                Op::Gt => ("晚于", "不晚于"),
                Op::Ge => ("不早于", "早于"),
                Op::Eq => ("为", "不是"),
                Op::Ne => ("不是", "为"),
            };
            let _ = write!(s, "{} {a}，{} {v}", d.zh, if ok { yes } else { no });
        }
        Expr::Enum { f, vs, negate } => {
            let d = def(*f);
            let Some(a) = enum_of(*f, x) else {
                return missing(*f);
            };
            let Ty::Enum(list) = d.ty else {
                return String::new();
            };
            let _ = write!(s, "{}为{}", d.zh, zh_of(list, a));
            let inside = vs.contains(&a);
            let want: Vec<&str> = vs.iter().map(|v| zh_of(list, v)).collect();
            if vs.len() > 1 && !inside && !*negate {
                let _ = write!(s, "，不属于{}", want.join("、"));
            } else if vs.len() == 1 && inside == *negate && !*negate {
                let _ = write!(s, "，不是{}", want[0]);
            }
        }
        Expr::Region { f, prefixes, .. } => {
            let d = def(*f);
            let Some(a) = region_of(*f, x) else {
                return missing(*f);
            };
            let inside = prefixes.iter().any(|p| a.starts_with(p.as_str()));
            let want: Vec<String> = prefixes.iter().map(|p| names(p)).collect();
            let _ = write!(
                s,
                "{}{}{}",
                d.zh,
                if inside { "在" } else { "不在" },
                want.join("、")
            );
        }
        Expr::List { names } => {
            let on: Vec<&str> = x
                .lists
                .iter()
                .filter(|l| names.contains(l))
                .map(String::as_str)
                .collect();
            if on.is_empty() {
                let _ = write!(s, "不在名单“{}”中", names.join("”“"));
            } else {
                let _ = write!(s, "在名单“{}”中", on.join("”“"));
            }
        }
        Expr::Bool { f, .. } => {
            let d = def(*f);
            let Some(a) = bool_of(*f, x) else {
                return missing(*f);
            };
            let _ = write!(s, "{}{}", if a { "属于" } else { "不属于" }, d.zh);
        }
        _ => {}
    }
    s
}

fn missing(f: Field) -> String {
    match f {
        Field::AbilityLevel => "无有效的能力评估".into(),
        Field::DeathDate => "无死亡日期".into(),
        Field::DisabilityGrade => "无残疾等级".into(),
        _ => format!("{}未登记", def(f).zh),
    }
}

// ---------------------------------------------------------------------------------------------
// Catalogue items: an item's rule, and its tiers (bands with their own condition and amount).

/// A band of an item, e.g. 高龄津贴 90–99 岁: 100 元/月. Tiers are tried in order; the first whose
/// rule holds (or that has none) applies.
#[derive(Debug, Clone)]
pub struct Tier {
    pub label: String,
    pub rule: Option<Rule>,
    /// Cash per month or once, in fen (分).
    pub amount_fen: i64,
    /// Service units per month (visits), 0 for cash items.
    pub quota: i64,
}

#[derive(Debug, Clone)]
pub struct ItemRule {
    pub rule: Rule,
    pub tiers: Vec<Tier>,
}

/// An item's decision for one elder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemDecision {
    pub eligible: bool,
    /// Index of the tier that applies.
    pub tier: Option<usize>,
    pub reasons: Vec<Reason>,
}

impl ItemRule {
    /// Eligible → the index of the tier that applies (0 when the item has no tiers).
    pub fn decide(&self, f: &Facts, on: NaiveDate) -> Option<usize> {
        if !self.rule.holds(f, on) {
            return None;
        }
        if self.tiers.is_empty() {
            return Some(0);
        }
        self.tiers
            .iter()
            .position(|t| t.rule.as_ref().is_none_or(|r| r.holds(f, on)))
    }

    pub fn explain(
        &self,
        f: &Facts,
        on: NaiveDate,
        names: &dyn Fn(&str) -> String,
    ) -> ItemDecision {
        let (ok, mut reasons) = self.rule.explain(f, on, names);
        if !ok || self.tiers.is_empty() {
            return ItemDecision {
                eligible: ok,
                tier: ok.then_some(0),
                reasons,
            };
        }
        let mut misses = vec![];
        for (i, t) in self.tiers.iter().enumerate() {
            match &t.rule {
                None => {
                    return ItemDecision {
                        eligible: true,
                        tier: Some(i),
                        reasons,
                    };
                }
                Some(r) => {
                    let (tok, rs) = r.explain(f, on, names);
                    if tok {
                        reasons.extend(rs);
                        reasons.push(Reason {
                            ok: true,
                            text: format!("适用档次：{}", t.label),
                        });
                        return ItemDecision {
                            eligible: true,
                            tier: Some(i),
                            reasons,
                        };
                    }
                    misses.extend(rs);
                }
            }
        }
        reasons.push(Reason {
            ok: false,
            text: "不属于任何档次".into(),
        });
        reasons.extend(misses);
        ItemDecision {
            eligible: false,
            tier: None,
            reasons,
        }
    }
}

/// A rule as a person reads it on the public page: "状态为在册、80 周岁及以上、户籍在如皋市" becomes
/// "80 周岁及以上、户籍在如皋市的在册老年人". `region` names a code (a subtree's prefix, padded).
impl Rule {
    pub fn plain_zh(&self, region: &dyn Fn(&str) -> String) -> String {
        let active = |e: &Expr| matches!(e, Expr::Enum { f: Field::Status, vs, negate: false } if vs.as_slice() == ["active"]);
        let (parts, in_register): (Vec<&Expr>, bool) = match &self.expr {
            Expr::All(xs) => (
                xs.iter().filter(|x| !active(x)).collect(),
                xs.iter().any(active),
            ),
            e if active(e) => (vec![], true),
            e => (vec![e], false),
        };
        // An 或 among other conditions is bracketed; alone it needs none.
        let alone = parts.len() == 1;
        let said: Vec<String> = parts.iter().map(|e| plain(e, region, alone)).collect();
        let who = if in_register {
            "在册老年人"
        } else {
            "老年人"
        };
        if said.is_empty() {
            format!("所有{who}")
        } else {
            format!("{}的{who}", said.join("、"))
        }
    }
}

fn op_words(op: Op) -> &'static str {
    match op {
        Op::Eq => "为",
        Op::Ne => "不为",
        Op::Lt => "低于",
        Op::Le => "不高于",
        Op::Gt => "高于",
        Op::Ge => "不低于",
    }
}

fn enum_zh(f: Field, code: &str) -> &'static str {
    match def(f).ty {
        Ty::Enum(list) => list.iter().find(|x| x.0 == code).map_or("", |x| x.1),
        _ => "",
    }
}

fn or_list(xs: &[String]) -> String {
    match xs {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{}或{last}", rest.join("、")),
    }
}

/// One condition in words; `top`: directly under the rule's 且 (no brackets needed).
fn plain(e: &Expr, region: &dyn Fn(&str) -> String, top: bool) -> String {
    let level = |v: i64| {
        crate::assessment::LEVEL_NAMES
            .get(v as usize)
            .copied()
            .unwrap_or("")
    };
    match e {
        Expr::All(xs) => {
            let s: Vec<String> = xs.iter().map(|x| plain(x, region, false)).collect();
            let s = s.join("且");
            if top { s } else { format!("（{s}）") }
        }
        Expr::Any(xs) => {
            // Between conditions "，或" (values inside one condition take "、…或").
            let s: Vec<String> = xs.iter().map(|x| plain(x, region, false)).collect();
            let s = s.join("，或");
            if top { s } else { format!("（{s}）") }
        }
        Expr::Not(x) => format!("不符合“{}”", plain(x, region, true)),
        Expr::Int {
            f: Field::Age,
            op,
            v,
        } => match op {
            Op::Ge => format!("{v} 周岁及以上"),
            Op::Gt => format!("{} 周岁及以上", v + 1),
            Op::Le => format!("{v} 周岁及以下"),
            Op::Lt => format!("{} 周岁及以下", v - 1),
            Op::Eq => format!("{v} 周岁"),
            Op::Ne => format!("不是 {v} 周岁"),
        },
        Expr::Int {
            f: Field::AbilityLevel,
            op,
            v,
        } => match op {
            Op::Ge => format!("经评估为{}及以上", level(*v)),
            Op::Gt => format!("经评估为{}及以上", level(v + 1)),
            Op::Le => format!("经评估为{}及以下", level(*v)),
            Op::Lt => format!("经评估为{}及以下", level(v - 1)),
            Op::Eq => format!("经评估为{}", level(*v)),
            Op::Ne => format!("评估等级不是{}", level(*v)),
        },
        Expr::Int { f, op, v } => {
            let d = def(*f);
            let unit = match d.ty {
                Ty::Int { unit, .. } => unit,
                _ => "",
            };
            format!("{}{}{v}{unit}", d.zh, op_words(*op))
        }
        Expr::IntIn { f, vs } => {
            let d = def(*f);
            let unit = match d.ty {
                Ty::Int { unit, .. } => unit,
                _ => "",
            };
            let vs: Vec<String> = vs
                .iter()
                .map(|v| match f {
                    Field::AbilityLevel => level(*v).to_string(),
                    _ => format!("{v}{unit}"),
                })
                .collect();
            format!("{}为{}", d.zh, or_list(&vs))
        }
        Expr::Date { f, op, v } => {
            let when = match op {
                Op::Eq => "为",
                Op::Ne => "不是",
                Op::Lt => "早于",
                Op::Le => "不晚于",
                Op::Gt => "晚于",
                Op::Ge => "不早于",
            };
            format!("{}{when} {}", def(*f).zh, v.format("%Y年%-m月%-d日"))
        }
        Expr::Enum { f, vs, negate } => {
            let names: Vec<String> = vs.iter().map(|c| enum_zh(*f, c).to_string()).collect();
            let is = if *negate { "不是" } else { "为" };
            format!("{}{is}{}", def(*f).zh, or_list(&names))
        }
        Expr::Region {
            f,
            prefixes,
            negate,
        } => {
            let names: Vec<String> = prefixes.iter().map(|p| region(p)).collect();
            let place = if *f == Field::HukouRegion {
                "户籍"
            } else {
                "居住"
            };
            let is = if *negate { "不在" } else { "在" };
            format!("{place}{is}{}", or_list(&names))
        }
        Expr::Bool { f, v, negate } => {
            let yes = *v != *negate;
            format!("{}{}", if yes { "属于" } else { "不属于" }, def(*f).zh)
        }
        Expr::List { names } => {
            let names: Vec<String> = names.iter().map(|n| format!("“{n}”")).collect();
            format!("列入{}名单", or_list(&names))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rules_read_as_plain_chinese() {
        let name = |p: &str| {
            if p.starts_with("320682") {
                "如皋市".to_string()
            } else {
                p.to_string()
            }
        };
        let plain = |src: &str| Rule::parse(src).unwrap().plain_zh(&name);
        assert_eq!(
            plain("状态 = 在册 且 年龄 >= 80 且 户籍地 位于 320682"),
            "80 周岁及以上、户籍在如皋市的在册老年人"
        );
        assert_eq!(
            plain("经济状况 属于 [特困, 低保, 低保边缘] 且 能力等级 >= 2"),
            "经济状况为特困、低保或低保边缘、经评估为中度失能及以上的老年人"
        );
        assert_eq!(plain("状态 = 在册"), "所有在册老年人");
        assert_eq!(
            plain("状态 = 在册 且 (居住状况 = 独居 或 优抚对象 = 是)"),
            "居住状况为独居，或属于优抚对象的在册老年人"
        );
        assert_eq!(
            plain("年龄 >= 60 且 (居住状况 = 独居 或 优抚对象 = 是)"),
            "60 周岁及以上、（居住状况为独居，或属于优抚对象）的老年人"
        );
    }

    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }
    fn facts(birth: &str) -> Facts<'static> {
        Facts {
            birth_date: d(birth),
            sex: Some(Sex::Female),
            residence_region: "320682104203",
            hukou_region: Some("320682104203"),
            status: "active",
            living_status: Some("living_alone"),
            economic_status: Some("ordinary"),
            family_planning_special: None,
            disability_grade: None,
            entitled_veteran_family: Some(false),
            ability_level: None,
            death_date: None,
            lists: &[],
        }
    }
    fn names(code: &str) -> String {
        match code {
            "320682" => "如皋市".into(),
            "320682104" => "石庄镇".into(),
            c => c.to_string(),
        }
    }
    fn longevity() -> ItemRule {
        ItemRule {
            rule: Rule::parse("状态 = 在册 且 年龄 >= 80").unwrap(),
            tiers: vec![
                Tier {
                    label: "80–89岁".into(),
                    rule: Some(Rule::parse("年龄 < 90").unwrap()),
                    amount_fen: 5000,
                    quota: 0,
                },
                Tier {
                    label: "90–99岁".into(),
                    rule: Some(Rule::parse("年龄 < 100").unwrap()),
                    amount_fen: 10000,
                    quota: 0,
                },
                Tier {
                    label: "100岁及以上".into(),
                    rule: None,
                    amount_fen: 30000,
                    quota: 0,
                },
            ],
        }
    }

    #[test]
    fn longevity_bands_turn_on_the_exact_birthday() {
        let item = longevity();
        let amount = |birth: &str, on: &str| {
            item.decide(&facts(birth), d(on))
                .map(|t| item.tiers[t].amount_fen / 100)
        };
        // 80: the day before the birthday nothing, on the birthday 50.
        assert_eq!(amount("1945-11-29", "2025-11-28"), None);
        assert_eq!(amount("1945-11-29", "2025-11-29"), Some(50));
        assert_eq!(amount("1935-03-01", "2025-02-28"), Some(50));
        assert_eq!(amount("1935-03-01", "2025-03-01"), Some(100));
        assert_eq!(amount("1925-12-31", "2025-12-30"), Some(100));
        assert_eq!(amount("1925-12-31", "2025-12-31"), Some(300));
        assert_eq!(amount("1915-01-01", "2025-06-01"), Some(300));
        // Born on 29 February: the birthday counts as reached on 1 March in a common year.
        assert_eq!(amount("1944-02-29", "2024-02-29"), Some(50));
        assert_eq!(amount("1945-02-28", "2025-02-28"), Some(50));
        assert_eq!(amount("1944-02-29", "2023-02-28"), None);
        // Death ends it whatever the age.
        let mut f = facts("1930-01-01");
        f.status = "deceased";
        assert_eq!(item.decide(&f, d("2025-06-01")), None);
    }

    #[test]
    fn reasons_say_why_in_plain_words() {
        let item = longevity();
        let r = item.explain(&facts("1947-06-01"), d("2025-11-29"), &names);
        assert!(!r.eligible);
        assert_eq!(
            r.reasons,
            vec![Reason {
                ok: false,
                text: "年龄 78 岁，未满 80 岁".into()
            }]
        );
        let r = item.explain(&facts("1935-06-01"), d("2025-11-29"), &names);
        assert!(r.eligible);
        assert_eq!(r.tier, Some(1));
        let texts: Vec<&str> = r.reasons.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "状态为在册",
                "年龄 90 岁，满 80 岁",
                "年龄 90 岁，未满 100 岁",
                "适用档次：90–99岁"
            ]
        );

        let rule = Rule::parse(
            "经济状况 属于 [特困, 低保] 且 能力等级 >= 重度失能 且 居住地 位于 320682104000",
        )
        .unwrap();
        let (ok, rs) = rule.explain(&facts("1950-01-01"), d("2025-11-29"), &names);
        assert!(!ok);
        let texts: Vec<&str> = rs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            ["经济状况为一般，不属于特困、低保", "无有效的能力评估"]
        );
        let mut f = facts("1950-01-01");
        f.economic_status = Some("minimum_living");
        f.ability_level = Some(4);
        let (ok, rs) = rule.explain(&f, d("2025-11-29"), &names);
        assert!(ok);
        let texts: Vec<&str> = rs.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "经济状况为低保",
                "能力等级为完全失能，达到重度失能及以上",
                "居住地在石庄镇"
            ]
        );

        // Under 非 the same facts speak the other way.
        let rule = Rule::parse("非 居住状况 = 与子女同住").unwrap();
        let (ok, rs) = rule.explain(&facts("1950-01-01"), d("2025-11-29"), &names);
        assert!(ok);
        assert_eq!(
            rs,
            vec![Reason {
                ok: true,
                text: "居住状况为独居，不是与子女同住".into()
            }]
        );
    }

    #[test]
    fn the_language_reads_chinese_and_codes_alike() {
        let on = d("2025-11-29");
        let f = facts("1940-01-01");
        let pairs = [
            (
                "年龄>=80且居住状况=独居",
                "age >= 80 and living_status = living_alone",
            ),
            ("年龄 ≥ 85 或者 性别 ＝ 女", "age >= 85 or sex = female"),
            (
                "非（经济状况 属于【特困，低保】）",
                "not (economic_status in [extreme_poverty, minimum_living])",
            ),
            ("户籍地 位于 '320682'", "hukou_region within 320682000000"),
            (
                "出生日期 < '1945-01-01' 并且 优抚对象 = 否",
                "birth_date < 1945-01-01 and entitled_veteran_family = false",
            ),
            ("年龄 属于 [85, 86]", "age in [85, 86]"),
            ("居住地 = 320682104203", "residence_region != 320682104204"),
        ];
        for (zh, en) in pairs {
            let a = Rule::parse(zh).unwrap_or_else(|e| panic!("{zh}: {e}"));
            let b = Rule::parse(en).unwrap_or_else(|e| panic!("{en}: {e}"));
            assert_eq!(a.holds(&f, on), b.holds(&f, on), "{zh} vs {en}");
            assert!(a.holds(&f, on), "{zh}");
        }
        assert!(!Rule::parse("年龄 属于 [84, 86]").unwrap().holds(&f, on));
    }

    #[test]
    fn bad_rules_are_refused_with_column_and_message() {
        let cases = [
            ("", 1, "规则为空"),
            ("身高 > 170", 1, "不认识的字段“身高”"),
            ("年龄 >= ", 7, "规则不完整"),
            ("年龄 >= 八十", 7, "应与整数比较"),
            ("年龄 >= 200", 7, "0–150岁"),
            ("性别 > 男", 4, "只能用 = != 属于"),
            (
                "经济状况 = 富裕",
                8,
                "没有取值“富裕”，可选：特困、低保、低保边缘、一般",
            ),
            ("居住地 位于 32068", 8, "区划代码“32068”"),
            ("年龄 >= 80 年龄 < 90", 10, "多出内容"),
            ("(年龄 >= 80", 10, "缺少右括号"),
            ("出生日期 < '1945-13-01'", 8, "应写成 YYYY-MM-DD"),
            ("年龄 位于 320682", 4, "“位于”只能用于居住地"),
            ("年龄 # 3", 4, "不认识的符号“#”"),
            ("能力等级 = 很好", 8, "能力等级应为 0–4"),
        ];
        for (src, col, msg) in cases {
            let e = Rule::parse(src).expect_err(src);
            assert!(e.message.contains(msg), "{src}: {e}");
            assert_eq!(e.column, col, "{src}: {e}");
        }
    }

    #[test]
    fn a_missing_value_is_false_and_said() {
        let f = facts("1940-01-01");
        let r = Rule::parse("能力等级 < 2").unwrap();
        let (ok, rs) = r.explain(&f, d("2025-01-01"), &names);
        assert!(!ok);
        assert_eq!(rs[0].text, "无有效的能力评估");
        assert!(
            Rule::parse("非 能力等级 >= 0")
                .unwrap()
                .holds(&f, d("2025-01-01"))
        );
        assert!(
            !Rule::parse("计生特殊家庭 != 失独")
                .unwrap()
                .holds(&f, d("2025-01-01"))
        );
    }

    #[test]
    fn lists_are_named_and_explained() {
        let r = Rule::parse("状态 = 在册 且 名单 包含 [重点帮扶对象, 失能照护试点]").unwrap();
        assert_eq!(
            r.lists(),
            vec!["失能照护试点".to_string(), "重点帮扶对象".to_string()]
        );
        let on = d("2025-11-29");
        let mut f = facts("1950-01-01");
        let (ok, rs) = r.explain(&f, on, &names);
        assert!(!ok);
        assert_eq!(rs[0].text, "不在名单“重点帮扶对象”“失能照护试点”中");
        let lists = vec!["重点帮扶对象".to_string()];
        f.lists = &lists;
        assert!(r.holds(&f, on));
        assert_eq!(
            r.explain(&f, on, &names).1[1].text,
            "在名单“重点帮扶对象”中"
        );
        assert!(Rule::parse("lists contains pilot").unwrap().lists() == vec!["pilot".to_string()]);
        let e = Rule::parse("名单 = 重点帮扶对象").unwrap_err();
        assert!(e.message.contains("只能用“包含”"), "{e}");
        let e = Rule::parse("年龄 包含 3").unwrap_err();
        assert!(e.message.contains("“包含”只能用于名单"), "{e}");
    }

    fn arb_facts() -> impl Strategy<Value = (i64, Option<i64>, usize, usize, bool)> {
        (
            0i64..40_000,
            proptest::option::of(0i64..=4),
            0usize..4,
            0usize..3,
            any::<bool>(),
        )
    }

    proptest! {
        /// The fast path and the explaining path always agree, and the reasons of a decision all
        /// speak for it when eligible.
        #[test]
        fn holds_equals_explain((days, level, eco, st, vet) in arb_facts(), which in 0usize..6) {
            let rules = [
                "年龄 >= 80 且 (经济状况 属于 [特困, 低保] 或 能力等级 >= 3)",
                "非 (状态 = 在册) 或 优抚对象 = 是",
                "年龄 < 70 或 年龄 > 90 或 能力等级 属于 [0, 4]",
                "居住地 位于 320682104000 且 非 能力等级 <= 1",
                "出生日期 >= '1940-06-01' 且 状态 != 已故",
                "(年龄 >= 60 且 年龄 < 65) 或 非 (经济状况 = 一般 且 优抚对象 = 否)",
            ];
            let r = Rule::parse(rules[which]).unwrap();
            let mut f = facts("1930-01-01");
            f.birth_date = d("1920-01-01") + chrono::Days::new(days as u64);
            f.ability_level = level;
            f.economic_status = Some(codes::ECONOMIC_STATUS[eco].0);
            f.status = codes::ELDER_STATUS[st].0;
            f.entitled_veteran_family = Some(vet);
            let on = d("2025-11-29");
            let (ok, rs) = r.explain(&f, on, &names);
            prop_assert_eq!(ok, r.holds(&f, on));
            prop_assert!(!rs.is_empty());
            prop_assert!(rs.iter().all(|x| x.ok == ok), "{:?}", rs);
        }

        /// Age bands are monotone: getting older never takes away an 80+ allowance while alive,
        /// and the tier never goes down.
        #[test]
        fn older_never_lowers_the_band(days in 0i64..50_000, more in 0i64..20_000) {
            let item = longevity();
            let on = d("2025-11-29");
            let young = facts("1900-01-01");
            let mut young = young;
            young.birth_date = d("1900-01-01") + chrono::Days::new((days + more) as u64);
            let mut old = young.clone();
            old.birth_date = d("1900-01-01") + chrono::Days::new(days as u64);
            let a = item.decide(&young, on).map(|t| item.tiers[t].amount_fen);
            let b = item.decide(&old, on).map(|t| item.tiers[t].amount_fen);
            prop_assert!(b >= a, "{:?} {:?}", a, b);
        }
    }
}

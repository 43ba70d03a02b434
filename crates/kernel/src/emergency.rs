//! Emergency calls (紧急呼叫): what a device may send, how urgent an event is, the steps an event
//! goes through, and when its clocks are breached. The ingest, the board and the commands use these.

use chrono::{DateTime, Utc};
use serde::Deserialize;

/// What a device reports. Heartbeats and low batteries keep the device's record; the rest are
/// events on the operators' board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Sos,
    Fall,
    Smoke,
    Gas,
    Door,
    Heartbeat,
    LowBattery,
    /// Entered by an operator from a telephone call (12349), never sent by a device.
    Call,
}

impl EventType {
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "sos" => EventType::Sos,
            "fall" => EventType::Fall,
            "smoke" => EventType::Smoke,
            "gas" => EventType::Gas,
            "door" => EventType::Door,
            "heartbeat" => EventType::Heartbeat,
            "low_battery" => EventType::LowBattery,
            "call" => EventType::Call,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Sos => "sos",
            EventType::Fall => "fall",
            EventType::Smoke => "smoke",
            EventType::Gas => "gas",
            EventType::Door => "door",
            EventType::Heartbeat => "heartbeat",
            EventType::LowBattery => "low_battery",
            EventType::Call => "call",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            EventType::Sos => "一键呼叫",
            EventType::Fall => "跌倒报警",
            EventType::Smoke => "烟雾报警",
            EventType::Gas => "燃气报警",
            EventType::Door => "门磁报警",
            EventType::Heartbeat => "心跳",
            EventType::LowBattery => "电量低",
            EventType::Call => "来电",
        }
    }
    /// Whether it goes on the board (an event someone must handle).
    pub fn is_alarm(self) -> bool {
        !matches!(self, EventType::Heartbeat | EventType::LowBattery)
    }
    /// 1 is the most urgent. A fire or gas leak endangers the neighbours too; a door left open
    /// is worth a call, not a run.
    pub fn priority(self) -> i64 {
        match self {
            EventType::Smoke | EventType::Gas => 1,
            EventType::Sos | EventType::Fall | EventType::Call => 2,
            EventType::Door => 3,
            EventType::Heartbeat | EventType::LowBattery => 9,
        }
    }
}

/// One message from a device, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceMessage {
    pub event_id: String,
    pub kind: EventType,
    /// When the device says it happened (its clock, in UTC).
    pub at: DateTime<Utc>,
    pub battery: Option<i64>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
    /// Only in a gateway's HTTP message (the MQTT topic names the device).
    pub serial: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    event_id: serde_json::Value,
    #[serde(rename = "type")]
    kind: serde_json::Value,
    at: serde_json::Value,
    #[serde(default)]
    battery: Option<serde_json::Value>,
    #[serde(default)]
    lat: Option<serde_json::Value>,
    #[serde(default)]
    lng: Option<serde_json::Value>,
    #[serde(default)]
    serial: Option<serde_json::Value>,
}

/// The largest message accepted: the fields above fit in a few hundred bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A serial or an event id: 1 to 64 letters, digits and `-_.:`.
pub fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Checks a message's bytes; the error says in Chinese what is wrong (kept with the rejected
/// message for the device's maintainer).
pub fn parse_message(bytes: &[u8]) -> Result<DeviceMessage, String> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(format!("消息超过 {MAX_MESSAGE_BYTES} 字节"));
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| {
        let e = e.to_string();
        if e.contains("missing field") {
            let f = e.split('`').nth(1).unwrap_or("").replace("kind", "type");
            format!("缺少字段 {f}")
        } else if e.contains("unknown field") {
            format!("含有未定义的字段（{}）", e.split('`').nth(1).unwrap_or(""))
        } else {
            "不是有效的 JSON 对象".to_string()
        }
    })?;
    let text = |v: &serde_json::Value, name: &str| -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("字段 {name} 应为字符串"))
    };
    let event_id = text(&raw.event_id, "event_id")?;
    if !valid_token(&event_id) {
        return Err("event_id 应为 1–64 位字母、数字或 -_.:".into());
    }
    let kind_s = text(&raw.kind, "type")?;
    let kind = EventType::parse(&kind_s)
        .filter(|k| *k != EventType::Call)
        .ok_or_else(|| {
            "type 应为 sos、fall、smoke、gas、door、heartbeat 或 low_battery 之一".to_string()
        })?;
    let at_s = text(&raw.at, "at")?;
    let at = DateTime::parse_from_rfc3339(&at_s)
        .map_err(|_| "at 应为 RFC 3339 时间，如 2026-12-07T08:30:00+08:00".to_string())?
        .with_timezone(&Utc);
    let number = |v: &Option<serde_json::Value>, name: &str, lo: f64, hi: f64| match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => match n.as_f64() {
            Some(x) if x.is_finite() && (lo..=hi).contains(&x) => Ok(Some(x)),
            _ => Err(format!("{name} 应为 {lo} 到 {hi} 之间的数")),
        },
    };
    let battery = number(&raw.battery, "battery", 0.0, 100.0)?.map(|b| b.round() as i64);
    let lat = number(&raw.lat, "lat", -90.0, 90.0)?;
    let lng = number(&raw.lng, "lng", -180.0, 180.0)?;
    let serial = match &raw.serial {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => {
            let s = text(v, "serial")?;
            if !valid_token(&s) {
                return Err("serial 应为 1–64 位字母、数字或 -_.:".into());
            }
            Some(s)
        }
    };
    Ok(DeviceMessage {
        event_id,
        kind,
        at,
        battery,
        lat,
        lng,
        serial,
    })
}

/// The serial in an MQTT topic `yiyang/devices/{serial}/events`.
pub fn serial_of_topic(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("yiyang/devices/")?;
    let serial = rest.strip_suffix("/events")?;
    valid_token(serial).then_some(serial)
}

/// Where an event is in its handling, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Received,
    Acknowledged,
    Triaged,
    Dispatched,
    OnScene,
    Closed,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "received" => State::Received,
            "acknowledged" => State::Acknowledged,
            "triaged" => State::Triaged,
            "dispatched" => State::Dispatched,
            "on_scene" => State::OnScene,
            "closed" => State::Closed,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Acknowledged => "acknowledged",
            State::Triaged => "triaged",
            State::Dispatched => "dispatched",
            State::OnScene => "on_scene",
            State::Closed => "closed",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            State::Received => "待接警",
            State::Acknowledged => "已接警",
            State::Triaged => "已研判",
            State::Dispatched => "已派出",
            State::OnScene => "已到场",
            State::Closed => "已结案",
        }
    }
}

/// An operator's step on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Triage,
    Dispatch,
    OnScene,
    Close,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "acknowledge" => Action::Acknowledge,
            "triage" => Action::Triage,
            "dispatch" => Action::Dispatch,
            "on_scene" => Action::OnScene,
            "close" => Action::Close,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledge",
            Action::Triage => "triage",
            Action::Dispatch => "dispatch",
            Action::OnScene => "on_scene",
            Action::Close => "close",
        }
    }
}

/// The state an action leads to from `from`, or why it cannot be taken. Triage may be corrected
/// and help sent more than once (the family, then 120); a false alarm closes without anyone sent.
/// Taking a later step acknowledges the event too: whoever triages has answered it.
pub fn step(from: State, action: Action) -> Result<State, &'static str> {
    use State::*;
    match (action, from) {
        (_, Closed) => Err("该事件已结案"),
        (Action::Acknowledge, Received) => Ok(Acknowledged),
        (Action::Acknowledge, _) => Err("该事件已接警"),
        (Action::Triage, Received | Acknowledged | Triaged) => Ok(Triaged),
        (Action::Triage, _) => Err("已派出处置，不能再改研判"),
        (Action::Dispatch, Triaged | Dispatched | OnScene) => Ok(from.max(Dispatched)),
        (Action::Dispatch, _) => Err("请先研判再派出"),
        (Action::OnScene, Dispatched) => Ok(OnScene),
        (Action::OnScene, OnScene) => Err("已记录到场"),
        (Action::OnScene, _) => Err("尚未派出，不能记录到场"),
        (Action::Close, Triaged | Dispatched | OnScene) => Ok(Closed),
        (Action::Close, _) => Err("请先研判再结案"),
    }
}

/// How an operator judged an event.
pub const TRIAGES: &[(&str, &str)] = &[
    ("false_alarm", "误报"),
    ("needs_help", "需要帮助"),
    ("medical", "医疗急救（120）"),
    ("fire", "火警（119）"),
];

/// Whom help was sent to.
pub const DISPATCH_TO: &[(&str, &str)] = &[
    ("family", "家属"),
    ("village_worker", "村（居）网格员"),
    ("provider", "居家服务商"),
    ("emergency_120", "120 急救"),
    ("emergency_119", "119 消防"),
    ("police_110", "110 公安"),
];

pub fn triage_zh(code: &str) -> Option<&'static str> {
    TRIAGES.iter().find(|t| t.0 == code).map(|t| t.1)
}
pub fn dispatch_zh(code: &str) -> Option<&'static str> {
    DISPATCH_TO.iter().find(|t| t.0 == code).map(|t| t.1)
}

/// A region's clocks: acknowledged within `ack_secs` of arrival, someone on scene within
/// `on_scene_secs` of arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sla {
    pub ack_secs: i64,
    pub on_scene_secs: i64,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            ack_secs: 60,
            on_scene_secs: 30 * 60,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// Nobody answered in time.
    Ack,
    /// Nobody reached the elder in time (a false alarm closed early is no breach).
    OnScene,
}

impl Breach {
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::Ack => "ack",
            Breach::OnScene => "on_scene",
        }
    }
    pub fn zh(self) -> &'static str {
        match self {
            Breach::Ack => "超时未接警",
            Breach::OnScene => "超时未到场",
        }
    }
}

/// The clock an open event has breached at `now` (seconds since 1970), the first one first. An
/// event closed, or one whose step came in time, breaches nothing; a step taken late still
/// counts as late while it is open (the supervisor wants to know).
pub fn breach(
    state: State,
    received: i64,
    acknowledged: Option<i64>,
    on_scene: Option<i64>,
    now: i64,
    sla: Sla,
) -> Option<Breach> {
    if state == State::Closed {
        return None;
    }
    let ack_due = received + sla.ack_secs;
    match acknowledged {
        None if now > ack_due => return Some(Breach::Ack),
        Some(t) if t > ack_due => return Some(Breach::Ack),
        _ => {}
    }
    let scene_due = received + sla.on_scene_secs;
    match on_scene {
        None if now > scene_due => Some(Breach::OnScene),
        Some(t) if t > scene_due => Some(Breach::OnScene),
        _ => None,
    }
}

/// A device silent past its kind's allowance (hours) since its last sign of life, or since it
/// was installed if it never sent one.
pub fn silent(last_heartbeat: Option<i64>, installed: i64, allowed_hours: i64, now: i64) -> bool {
    now - last_heartbeat.unwrap_or(installed).max(installed) > allowed_hours * 3600
}

/// Device kinds (设备类型) and how long each may stay silent by default.
pub const DEVICE_KINDS: &[(&str, &str, i64)] = &[
    ("call_button", "一键呼叫", 24),
    ("bracelet", "智能手环", 24),
    ("fall_sensor", "跌倒报警", 24),
    ("smoke", "烟感", 24),
    ("gas", "燃气", 24),
    ("door", "门磁", 24),
    ("mattress", "床垫", 24),
];

pub fn device_kind_zh(code: &str) -> Option<&'static str> {
    DEVICE_KINDS.iter().find(|k| k.0 == code).map(|k| k.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_good_message_parses() {
        let m = parse_message(
            br#"{"event_id":"e-1","type":"sos","at":"2026-12-07T08:30:00+08:00","battery":87,"lat":32.39,"lng":120.56}"#,
        )
        .unwrap();
        assert_eq!(m.kind, EventType::Sos);
        assert_eq!(m.at.to_rfc3339(), "2026-12-07T00:30:00+00:00");
        assert_eq!(m.battery, Some(87));
        assert!(m.serial.is_none());
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "JSON"),
            (br#"{"type":"sos","at":"2026-12-07T08:30:00Z"}"#, "event_id"),
            (
                br#"{"event_id":"1","type":"fire","at":"2026-12-07T08:30:00Z"}"#,
                "type",
            ),
            (
                br#"{"event_id":"1","type":"call","at":"2026-12-07T08:30:00Z"}"#,
                "type",
            ),
            (
                br#"{"event_id":"1","type":"sos","at":"yesterday"}"#,
                "RFC 3339",
            ),
            (
                br#"{"event_id":"1","type":"sos","at":"2026-12-07T08:30:00Z","battery":140}"#,
                "battery",
            ),
            (
                br#"{"event_id":"a b","type":"sos","at":"2026-12-07T08:30:00Z"}"#,
                "event_id",
            ),
            (
                br#"{"event_id":"1","type":"sos","at":"2026-12-07T08:30:00Z","x":1}"#,
                "未定义",
            ),
            (
                br#"{"event_id":1,"type":"sos","at":"2026-12-07T08:30:00Z"}"#,
                "字符串",
            ),
        ];
        for (bytes, says) in cases {
            let e = parse_message(bytes).unwrap_err();
            assert!(e.contains(says), "{e} should mention {says}");
        }
        assert!(parse_message(&vec![b' '; MAX_MESSAGE_BYTES + 1]).is_err());
    }

    #[test]
    fn topics_name_their_device() {
        assert_eq!(
            serial_of_topic("yiyang/devices/SN-01/events"),
            Some("SN-01")
        );
        assert_eq!(serial_of_topic("yiyang/devices/a/b/events"), None);
        assert_eq!(serial_of_topic("yiyang/devices//events"), None);
        assert_eq!(serial_of_topic("other/SN/events"), None);
    }

    #[test]
    fn steps_follow_the_handling() {
        use Action as A;
        use State as S;
        assert_eq!(step(S::Received, A::Acknowledge), Ok(S::Acknowledged));
        assert!(step(S::Acknowledged, A::Acknowledge).is_err());
        assert_eq!(step(S::Received, A::Triage), Ok(S::Triaged));
        assert_eq!(step(S::Triaged, A::Triage), Ok(S::Triaged));
        assert!(step(S::Acknowledged, A::Dispatch).is_err());
        assert_eq!(step(S::Triaged, A::Dispatch), Ok(S::Dispatched));
        assert_eq!(step(S::OnScene, A::Dispatch), Ok(S::OnScene));
        assert!(step(S::Triaged, A::OnScene).is_err());
        assert_eq!(step(S::Dispatched, A::OnScene), Ok(S::OnScene));
        assert_eq!(step(S::Triaged, A::Close), Ok(S::Closed));
        assert!(step(S::Acknowledged, A::Close).is_err());
        assert!(step(S::Closed, A::Triage).is_err());
    }

    #[test]
    fn clocks_breach_at_their_boundaries() {
        let sla = Sla::default();
        let r = 1_000_000;
        use State::*;
        // Acknowledgement: due at 60 s, breached from 61 s.
        assert_eq!(breach(Received, r, None, None, r + 60, sla), None);
        assert_eq!(
            breach(Received, r, None, None, r + 61, sla),
            Some(Breach::Ack)
        );
        assert_eq!(
            breach(Acknowledged, r, Some(r + 60), None, r + 600, sla),
            None
        );
        assert_eq!(
            breach(Acknowledged, r, Some(r + 61), None, r + 62, sla),
            Some(Breach::Ack)
        );
        // On scene: due at 30 min.
        assert_eq!(
            breach(Dispatched, r, Some(r + 5), None, r + 1800, sla),
            None
        );
        assert_eq!(
            breach(Dispatched, r, Some(r + 5), None, r + 1801, sla),
            Some(Breach::OnScene)
        );
        assert_eq!(
            breach(OnScene, r, Some(r + 5), Some(r + 1800), r + 9000, sla),
            None
        );
        assert_eq!(breach(Closed, r, None, None, r + 9000, sla), None);
    }

    #[test]
    fn a_device_is_silent_after_its_allowance() {
        let h = 3600;
        assert!(!silent(Some(0), 0, 24, 24 * h));
        assert!(silent(Some(0), 0, 24, 24 * h + 1));
        assert!(!silent(None, 10 * h, 24, 30 * h));
        assert!(silent(None, 0, 24, 30 * h));
    }
}

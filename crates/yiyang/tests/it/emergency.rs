use crate::support::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

async fn devices(t: &TestApp) -> Vec<(String, Option<String>, String)> {
    yiyang::emergency::demo::seed(&t.state.db, 0.001, yiyang::platform::today())
        .await
        .unwrap();
    sqlx::query("SELECT serial, gateway_id, region_code FROM device ORDER BY serial")
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn gateway_post(t: &TestApp, token: &str, body: &str) -> (StatusCode, Value) {
    let req = Request::builder()
        .method("POST")
        .uri("/api/v1/device-events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let (s, b, _) = t.raw(req).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn msg(serial: &str, event: &str, kind: &str) -> String {
    json!({"serial": serial, "event_id": event, "type": kind, "at": "2026-12-07T08:30:00+08:00", "battery": 55})
        .to_string()
}

async fn count(t: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string()))
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap()
}

/// A device's message is one event however often it comes (ten at once included); a heartbeat
/// updates the device and never the board; an unknown serial, another gateway's device, a
/// malformed message and a wrong token are refused in Chinese and the first three kept as
/// rejected. On both engines.
#[tokio::test]
async fn db_device_messages_make_one_event_each_and_heartbeats_only_touch_the_device() {
    let t = TestApp::new("demo", 60).await;
    let devs = devices(&t).await;
    assert!(devs.len() >= 5, "{}", devs.len());
    let (gw_id, token) = yiyang::emergency::ingest::gateway_token(&t.state.db, "测试网关")
        .await
        .unwrap();
    sqlx::query("UPDATE device SET gateway_id = $1 WHERE serial = $2")
        .bind(&gw_id)
        .bind(&devs[0].0)
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    t.state.emergency.forget(&devs[0].0);
    let mine = devs[0].0.clone();
    let (s, v) = gateway_post(&t, &token, &msg(&mine, "e-1", "sos")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["result"], "created");
    let event = v["event"].as_str().unwrap().to_string();
    // The same message ten times at once: still one event.
    let bodies: Vec<String> = (0..10).map(|_| msg(&mine, "e-1", "sos")).collect();
    let sends = bodies.iter().map(|b| gateway_post(&t, &token, b));
    for (s, v) in futures_util::future::join_all(sends).await {
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["result"], "duplicate");
        assert_eq!(v["event"], event.as_str());
    }
    assert_eq!(count(&t, "SELECT COUNT(*) FROM emergency_event").await, 1);
    assert_eq!(
        count(&t, "SELECT duplicate_count FROM emergency_event").await,
        10
    );
    // Over MQTT (the topic names the device) the same key holds; a new id is a new event.
    use yiyang::emergency::ingest::{Outcome, Source, take};
    let body = json!({"event_id": "e-1", "type": "sos", "at": "2026-12-07T08:30:00Z"}).to_string();
    let o = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt(mine.clone()),
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(
        o,
        Outcome::Duplicate {
            event: event.clone()
        }
    );
    let other = devs[1].0.clone();
    let body = json!({"event_id": "e-1", "type": "fall", "at": "2026-12-07T08:31:00Z"}).to_string();
    let o = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt(other.clone()),
        body.as_bytes(),
    )
    .await
    .unwrap();
    assert!(matches!(o, Outcome::Created { .. }), "{o:?}");
    // A heartbeat: the device's last sign of life and battery, no event.
    let (s, v) = gateway_post(&t, &token, &msg(&mine, "h-1", "heartbeat")).await;
    assert_eq!((s, v["result"].as_str()), (StatusCode::OK, Some("device")));
    assert_eq!(count(&t, "SELECT COUNT(*) FROM emergency_event").await, 2);
    let (beat, battery): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT last_heartbeat, battery FROM device WHERE serial = $1")
            .bind(&mine)
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    assert!(beat.unwrap() > yiyang::emergency::now_ms() - 60_000);
    assert_eq!(battery, Some(55));
    // Refused, saying why; kept as rejected.
    for (body, says) in [
        (msg("NO-SUCH-1", "x", "sos"), "未登记"),
        (msg(&other, "x", "sos"), "未登记"),
        (msg(&mine, "x", "fire"), "type"),
        ("{\"serial\":".to_string(), "JSON"),
    ] {
        let (s, v) = gateway_post(&t, &token, &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{v}");
    }
    assert_eq!(count(&t, "SELECT COUNT(*) FROM device_reject").await, 4);
    let (s, v) = gateway_post(&t, "yg_wrong", &msg(&mine, "e-2", "sos")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(count(&t, "SELECT COUNT(*) FROM emergency_event").await, 2);
    // A new token replaces the old one.
    let (_, token2) = yiyang::emergency::ingest::gateway_token(&t.state.db, "测试网关")
        .await
        .unwrap();
    let (s, _) = gateway_post(&t, &token, &msg(&mine, "e-3", "sos")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = gateway_post(&t, &token2, &msg(&mine, "e-3", "sos")).await;
    assert_eq!(s, StatusCode::OK);
}

/// An operator takes an alarm from arrival to closure: steps only in their order, each sent twice
/// done once, closure only with what happened, every step audited; the card is an audited read;
/// another county's operator sees nothing; a call she enters is an event already answered.
#[tokio::test]
async fn db_an_alarm_is_answered_judged_sent_and_closed_in_order() {
    let t = TestApp::new("demo", 60).await;
    let devs = devices(&t).await;
    t.add_user("op", &["operator"], "320682000000", all_scopes())
        .await;
    t.add_user("far", &["operator"], "320681000000", all_scopes())
        .await;
    use yiyang::emergency::ingest::{Outcome, Source, take};
    let body =
        json!({"event_id": "a-1", "type": "smoke", "at": "2026-12-07T08:30:00Z"}).to_string();
    let Outcome::Created { event } = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt(devs[2].0.clone()),
        body.as_bytes(),
    )
    .await
    .unwrap() else {
        panic!("not created")
    };
    let c = t.login("op").await;
    let far = t.login("far").await;
    let (s, v, _) = t
        .call("GET", "/api/v1/emergency/events", Some(&c), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v[0]["id"], event.as_str());
    assert_eq!(v[0]["kind_zh"], "烟雾报警");
    assert_eq!(v[0]["state"], "received");
    let (_, v, _) = t
        .call("GET", "/api/v1/emergency/events", Some(&far), None)
        .await;
    assert_eq!(v.as_array().unwrap().len(), 0);
    let uri = format!("/api/v1/emergency/events/{event}");
    let (s, _, _) = t.call("GET", &uri, Some(&far), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, d, _) = t.call("GET", &uri, Some(&c), None).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert!(d["elder"]["name"].as_str().is_some(), "{d}");
    assert_eq!(d["elder"]["devices"][0]["serial"], devs[2].0.as_str());
    let steps = format!("{uri}/steps");
    let step = |id: &str, body: Value| {
        let mut b = body;
        b["id"] = id.into();
        t.call("POST", &steps, Some(&c), Some(b))
    };
    let id = || uuid::Uuid::new_v4().to_string();
    // Out of order, or missing what it needs.
    for (body, status) in [
        (
            json!({"action": "dispatch", "to": "family"}),
            StatusCode::CONFLICT,
        ),
        (json!({"action": "on_scene"}), StatusCode::CONFLICT),
        (
            json!({"action": "close", "note": "无事"}),
            StatusCode::CONFLICT,
        ),
        (
            json!({"action": "triage", "triage": "unknown"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"action": "jump"}), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (s, v, _) = step(&id(), body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        assert!(v["detail"].as_str().is_some_and(|d| !d.is_ascii()), "{v}");
    }
    let ack = id();
    let (s, v, _) = step(&ack, json!({"action": "acknowledge"})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("acknowledged")),
        "{v}"
    );
    // The same step again (a page that lost its answer): the same, done once.
    let (s, v, _) = step(&ack, json!({"action": "acknowledge"})).await;
    assert_eq!(
        (s, v["state"].as_str()),
        (StatusCode::OK, Some("acknowledged")),
        "{v}"
    );
    let (s, _, _) = t
        .call(
            "POST",
            &steps,
            Some(&far),
            Some(json!({"id": id(), "action": "triage", "triage": "fire"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for body in [
        json!({"action": "triage", "triage": "fire"}),
        json!({"action": "dispatch", "to": "emergency_119"}),
        json!({"action": "dispatch", "to": "family"}),
        json!({"action": "on_scene", "note": "消防到场"}),
    ] {
        let (s, v, _) = step(&id(), body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{body}: {v}");
    }
    let (s, v, _) = step(&id(), json!({"action": "close"})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v, _) = step(
        &id(),
        json!({"action": "close", "note": "厨房油锅起火，已扑灭"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["state"], "closed");
    assert_eq!(v["dispatched_to"], json!(["119 消防", "家属"]));
    assert!(v["on_scene_at"].as_str().is_some());
    assert_eq!(
        count(
            &t,
            &format!("SELECT COUNT(*) FROM emergency_event_step WHERE event_id = '{event}'")
        )
        .await,
        6
    );
    assert_eq!(
        count(&t, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'emergency_event.%' AND action <> 'emergency_event.view'").await,
        6
    );
    assert!(
        count(
            &t,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'emergency_event.view'"
        )
        .await
            >= 1
    );
    let (_, v, _) = t
        .call("GET", "/api/v1/emergency/events", Some(&c), None)
        .await;
    assert_eq!(
        v.as_array().unwrap().len(),
        0,
        "closed events leave the board"
    );
    // A call on the line, for the elder of the first device.
    let elder: String = sqlx::query_scalar("SELECT elder_id FROM device WHERE serial = $1")
        .bind(&devs[0].0)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    let call =
        json!({"id": id(), "elder_id": elder, "phone": "13800001111", "note": "老人说胸口疼"});
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/emergency/calls",
            Some(&c),
            Some(call.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (v["kind"].as_str(), v["state"].as_str()),
        (Some("call"), Some("acknowledged"))
    );
    let (s, v2, _) = t
        .call("POST", "/api/v1/emergency/calls", Some(&c), Some(call))
        .await;
    assert_eq!((s, &v2["id"]), (StatusCode::CREATED, &v["id"]));
    let (s, _, _) = t
        .call(
            "POST",
            "/api/v1/emergency/calls",
            Some(&far),
            Some(json!({"id": id(), "elder_id": elder, "note": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// Over the county's broker (Mosquitto at 127.0.0.1:1883): an SOS published with QoS 1 is on the
/// board within a second, published again it is still one event, and a heartbeat moves the
/// device's last sign of life. Skipped only where no broker listens (never in CI).
#[tokio::test]
async fn db_an_sos_over_mqtt_is_one_event_on_the_board_within_a_second() {
    if std::net::TcpStream::connect("127.0.0.1:1883").is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "no MQTT broker at 127.0.0.1:1883 in CI"
        );
        eprintln!("no MQTT broker at 127.0.0.1:1883: skipped");
        return;
    }
    let t = TestApp::new("demo", 60).await;
    devices(&t).await;
    // Serials of this test alone: other tests' servers share the broker.
    let tag = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE device SET serial = serial || '-{tag}'"
    )))
    .execute(&t.state.db.pool)
    .await
    .unwrap();
    let serials: Vec<String> = sqlx::query_scalar("SELECT serial FROM device ORDER BY serial")
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap();
    let broker = yiyang::emergency::mqtt::Broker::parse("mqtt://127.0.0.1:1883", None, None, None)
        .unwrap()
        .unwrap();
    let mut board = t.state.emergency.subscribe();
    yiyang::emergency::mqtt::start(
        t.state.db.clone(),
        t.state.emergency.clone(),
        broker,
        format!("yiyang-test-{tag}"),
    )
    .unwrap();
    // The publisher.
    let mut o = rumqttc::MqttOptions::new(format!("pub-{tag}"), "127.0.0.1", 1883);
    o.set_keep_alive(std::time::Duration::from_secs(10));
    let (client, mut events) = rumqttc::AsyncClient::new(o, 16);
    tokio::spawn(async move { while events.poll().await.is_ok() {} });
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    let topic = format!("yiyang/devices/{}/events", serials[0]);
    let sos =
        json!({"event_id": "m-1", "type": "sos", "at": "2026-12-07T08:30:00+08:00"}).to_string();
    let t0 = std::time::Instant::now();
    client
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, sos.clone())
        .await
        .unwrap();
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), board.recv())
        .await
        .expect("on the board")
        .unwrap();
    let took = t0.elapsed();
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    assert!(n.added);
    client
        .publish(&topic, rumqttc::QoS::AtLeastOnce, false, sos)
        .await
        .unwrap();
    let beat = json!({"event_id": "m-2", "type": "heartbeat", "at": "2026-12-07T08:30:00+08:00", "battery": 9}).to_string();
    client
        .publish(
            format!("yiyang/devices/{}/events", serials[1]),
            rumqttc::QoS::AtLeastOnce,
            false,
            beat,
        )
        .await
        .unwrap();
    let mut done = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let dups = count(
            &t,
            "SELECT COALESCE(MAX(duplicate_count), 0) FROM emergency_event",
        )
        .await;
        let battery = count(
            &t,
            &format!(
                "SELECT COALESCE(battery, -1) FROM device WHERE serial = '{}'",
                serials[1]
            ),
        )
        .await;
        if dups == 1 && battery == 9 {
            done = true;
            break;
        }
    }
    assert!(done, "the replay counted and the heartbeat stored");
    assert_eq!(count(&t, "SELECT COUNT(*) FROM emergency_event").await, 1);
    // The broker would keep this test's session (and queue for it) forever: a clean connection
    // under the same id ends it.
    let mut o = rumqttc::MqttOptions::new(format!("yiyang-test-{tag}"), "127.0.0.1", 1883);
    o.set_clean_session(true);
    let (c, mut ev) = rumqttc::AsyncClient::new(o, 4);
    for _ in 0..20 {
        if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) = ev.poll().await {
            break;
        }
    }
    let _ = c.disconnect().await;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), ev.poll()).await;
}

/// A region's clocks hold for its subtree; an open event is escalated once per clock it breaches,
/// at the boundary (not at the second, at the one after), never after it is closed; only a
/// supervisor sets clocks, within bounds. On both engines.
#[tokio::test]
async fn db_events_past_their_region_clocks_are_escalated_once_at_the_boundary() {
    let t = TestApp::new("demo", 60).await;
    let devs = devices(&t).await;
    t.add_user("boss", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("op", &["operator"], "320682000000", all_scopes())
        .await;
    let boss = t.login("boss").await;
    let op = t.login("op").await;
    let (serial, _, village) = devs[3].clone();
    let town = format!("{}000", &village[..9]);
    let put = json!({"region_code": town, "ack_secs": 30, "on_scene_secs": 600});
    let (s, _, _) = t
        .call("PUT", "/api/v1/emergency/sla", Some(&op), Some(put.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for bad in [
        json!({"region_code": town, "ack_secs": 5, "on_scene_secs": 600}),
        json!({"region_code": town, "ack_secs": 30, "on_scene_secs": 99_999}),
    ] {
        let (s, v, _) = t
            .call("PUT", "/api/v1/emergency/sla", Some(&boss), Some(bad))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    }
    let (s, v, _) = t
        .call("PUT", "/api/v1/emergency/sla", Some(&boss), Some(put))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, _) = t
        .call(
            "GET",
            &format!("/api/v1/emergency/sla?region_code={village}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["ack_secs"].as_i64(), v["own"].as_bool()),
        (Some(30), Some(false))
    );
    let (_, v, _) = t
        .call(
            "GET",
            "/api/v1/emergency/sla?region_code=320682000000",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(v["ack_secs"], 60, "the county keeps the default");
    use yiyang::emergency::ingest::{Outcome, Source, take};
    let body = json!({"event_id": "c-1", "type": "fall", "at": "2026-12-07T08:30:00Z"}).to_string();
    let Outcome::Created { event } = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt(serial),
        body.as_bytes(),
    )
    .await
    .unwrap() else {
        panic!("not created")
    };
    let received: i64 = sqlx::query_scalar("SELECT received_at FROM emergency_event WHERE id = $1")
        .bind(&event)
        .fetch_one(&t.state.db.pool)
        .await
        .unwrap();
    use yiyang::emergency::sla::escalate;
    let (db, hub) = (&t.state.db, &t.state.emergency);
    let at = |s: i64| received - received % 1000 + s * 1000;
    assert_eq!(escalate(db, hub, at(30)).await.unwrap(), 0, "due at 30 s");
    assert_eq!(
        escalate(db, hub, at(31)).await.unwrap(),
        1,
        "breached at 31 s"
    );
    assert_eq!(escalate(db, hub, at(32)).await.unwrap(), 0, "told once");
    let (_, v, _) = t
        .call("GET", "/api/v1/emergency/events", Some(&op), None)
        .await;
    assert!(v[0]["escalated_at"].as_str().is_some(), "{v}");
    // Answered late, sent, never on scene: the second clock at 600 s.
    for body in [
        json!({"action": "triage", "triage": "medical"}),
        json!({"action": "dispatch", "to": "emergency_120"}),
    ] {
        let mut b = body;
        b["id"] = uuid::Uuid::new_v4().to_string().into();
        let (s, v, _) = t
            .call(
                "POST",
                &format!("/api/v1/emergency/events/{event}/steps"),
                Some(&op),
                Some(b),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    // The late answer is still the breach on record until the scene clock runs out.
    let now = yiyang::emergency::now_ms();
    let scene = |s: i64| received + s * 1000;
    assert_eq!(escalate(db, hub, now.max(scene(600))).await.unwrap(), 0);
    assert_eq!(
        escalate(db, hub, scene(602)).await.unwrap(),
        1,
        "on scene due at 600 s"
    );
    assert_eq!(escalate(db, hub, scene(700)).await.unwrap(), 0);
    let steps: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM emergency_event_step WHERE event_id = $1 AND action = 'escalate'",
    )
    .bind(&event)
    .fetch_one(&t.state.db.pool)
    .await
    .unwrap();
    assert_eq!(steps, 2);
    let mut b = json!({"action": "close", "note": "已送医"});
    b["id"] = uuid::Uuid::new_v4().to_string().into();
    t.call(
        "POST",
        &format!("/api/v1/emergency/events/{event}/steps"),
        Some(&op),
        Some(b),
    )
    .await;
    assert_eq!(
        escalate(db, hub, scene(9000)).await.unwrap(),
        0,
        "closed: no more"
    );
}

/// The fleet: devices by kind and vendor with the government's monthly fees; a device silent past
/// its allowance is silent in the list and gets one maintenance task, closed when it is heard
/// from; an installed device takes messages, a retired one no more; only a supervisor installs,
/// in her area, with a serial not yet used. On both engines.
#[tokio::test]
async fn db_the_fleet_counts_devices_and_silent_ones_get_a_task_until_heard_from() {
    let t = TestApp::new("demo", 60).await;
    let devs = devices(&t).await;
    t.add_user("boss", &["officer"], "320682000000", all_scopes())
        .await;
    t.add_user("op", &["operator"], "320682000000", all_scopes())
        .await;
    let boss = t.login("boss").await;
    let op = t.login("op").await;
    let (s, f, _) = t
        .call("GET", "/api/v1/devices/summary", Some(&boss), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    assert_eq!(f["devices"].as_i64(), Some(devs.len() as i64));
    let by_kind: i64 = f["by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["devices"].as_i64().unwrap())
        .sum();
    assert_eq!(by_kind, devs.len() as i64);
    let fen: i64 = count(
        &t,
        "SELECT CAST(SUM(monthly_fee_fen) AS BIGINT) FROM device WHERE fee_payer = 'government'",
    )
    .await;
    assert!(
        (f["monthly_fee_government"].as_f64().unwrap() - fen as f64 / 100.0).abs() < 0.005,
        "{f}"
    );
    // One device silent for 25 hours (its kind allows 24), one for 23.
    let now = yiyang::emergency::now_ms();
    for (serial, hours) in [(&devs[0].0, 25), (&devs[1].0, 23)] {
        sqlx::query("UPDATE device SET last_heartbeat = $1 WHERE serial = $2")
            .bind(now - hours * 3600 * 1000)
            .bind(serial)
            .execute(&t.state.db.pool)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE device SET last_heartbeat = $1 WHERE serial <> $2 AND serial <> $3")
        .bind(now)
        .bind(&devs[0].0)
        .bind(&devs[1].0)
        .execute(&t.state.db.pool)
        .await
        .unwrap();
    let (_, silent, _) = t
        .call("GET", "/api/v1/devices?status=silent", Some(&boss), None)
        .await;
    let silent: Vec<&str> = silent
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["serial"].as_str().unwrap())
        .collect();
    assert_eq!(silent, vec![devs[0].0.as_str()]);
    use yiyang::emergency::fleet::maintain;
    assert_eq!(maintain(&t.state.db, now).await.unwrap(), (1, 0));
    assert_eq!(
        maintain(&t.state.db, now + 1000).await.unwrap(),
        (0, 0),
        "one task a device"
    );
    let (_, f, _) = t
        .call("GET", "/api/v1/devices/summary", Some(&boss), None)
        .await;
    assert_eq!(
        (f["silent"].as_i64(), f["open_tasks"].as_i64()),
        (Some(1), Some(1))
    );
    // Heard from again: the task closes.
    use yiyang::emergency::ingest::{Outcome, Source, take};
    let beat =
        json!({"event_id": "hb-1", "type": "heartbeat", "at": "2026-12-07T08:30:00Z"}).to_string();
    let o = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt(devs[0].0.clone()),
        beat.as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(o, Outcome::Device);
    // A rejected message is kept 90 days, then let go by the maintenance round.
    let now2 = yiyang::emergency::now_ms();
    for (id, age) in [
        ("r-old", yiyang::emergency::fleet::REJECTS_KEPT_MS + 1000),
        ("r-new", 1000),
    ] {
        sqlx::query("INSERT INTO device_reject (id, serial, source, reason, payload, received_at) VALUES ($1, 'X', 'mqtt', 'unknown_serial', '{}', $2)")
            .bind(id)
            .bind(now2 - age)
            .execute(&t.state.db.pool)
            .await
            .unwrap();
    }
    assert_eq!(maintain(&t.state.db, now2 + 1).await.unwrap(), (0, 1));
    let kept: Vec<String> = sqlx::query_scalar("SELECT id FROM device_reject WHERE id LIKE 'r-%'")
        .fetch_all(&t.state.db.pool)
        .await
        .unwrap();
    assert_eq!(kept, vec!["r-new".to_string()]);
    // Installing: a supervisor only, a living elder of her area, a new serial.
    let elder: String =
        sqlx::query_scalar("SELECT id FROM elder WHERE status = 'active' ORDER BY id LIMIT 1")
            .fetch_one(&t.state.db.pool)
            .await
            .unwrap();
    let new = json!({"serial": "NEW-0001", "kind": "smoke", "vendor": "消安电子", "elder_id": elder, "monthly_fee": 8.5});
    let (s, _, _) = t
        .call("POST", "/api/v1/devices", Some(&op), Some(new.clone()))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for (bad, field) in [
        (
            json!({"serial": "a b", "kind": "smoke", "vendor": "x", "elder_id": elder, "monthly_fee": 1}),
            "serial",
        ),
        (
            json!({"serial": "N-2", "kind": "toaster", "vendor": "x", "elder_id": elder, "monthly_fee": 1}),
            "kind",
        ),
        (
            json!({"serial": "N-2", "kind": "smoke", "vendor": "x", "elder_id": elder, "monthly_fee": 900}),
            "monthly_fee",
        ),
    ] {
        let (s, v, _) = t
            .call("POST", "/api/v1/devices", Some(&boss), Some(bad))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v.to_string().contains(field), "{v}");
    }
    let (s, v, _) = t
        .call("POST", "/api/v1/devices", Some(&boss), Some(new.clone()))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["kind_zh"], "烟感");
    let (s, _, _) = t
        .call("POST", "/api/v1/devices", Some(&boss), Some(new))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let smoke =
        json!({"event_id": "s-1", "type": "smoke", "at": "2026-12-07T08:30:00Z"}).to_string();
    let o = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt("NEW-0001".into()),
        smoke.as_bytes(),
    )
    .await
    .unwrap();
    assert!(matches!(o, Outcome::Created { .. }), "{o:?}");
    // Retired: its messages are refused (and kept as such).
    let (s, v, _) = t
        .call(
            "POST",
            "/api/v1/devices/NEW-0001/retire",
            Some(&boss),
            Some(json!({"reason": "老人入住养老院，设备收回"})),
        )
        .await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("retired")),
        "{v}"
    );
    let smoke =
        json!({"event_id": "s-2", "type": "smoke", "at": "2026-12-07T08:31:00Z"}).to_string();
    let o = take(
        &t.state.db,
        &t.state.emergency,
        Source::Mqtt("NEW-0001".into()),
        smoke.as_bytes(),
    )
    .await
    .unwrap();
    assert!(matches!(o, Outcome::Rejected { .. }), "{o:?}");
    assert_eq!(
        count(
            &t,
            "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'device.%'"
        )
        .await,
        2
    );
}

//! The county's MQTT broker: the server subscribes to `yiyang/devices/+/events` with QoS 1 and a
//! session the broker keeps, and acknowledges each message only after it is committed — killed
//! in between, the broker delivers it again on the next connection, and the (device, event id)
//! key keeps it one event. Also the simulator that publishes what devices would.

use super::Hub;
use super::ingest::{self, Source};
use crate::platform::db::Db;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, Transport};
use std::sync::Arc;
use std::time::Duration;

pub const TOPIC: &str = "yiyang/devices/+/events";

/// Where the broker is: `YIYANG_MQTT_URL` (`mqtt://host:port`, `mqtts://host:port`, or `off`),
/// `YIYANG_MQTT_USERNAME` / `YIYANG_MQTT_PASSWORD`, `YIYANG_MQTT_CA_FILE` (a PEM file for mqtts).
#[derive(Debug, Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub ca_file: Option<std::path::PathBuf>,
}

impl Broker {
    /// `None` when switched off.
    pub fn from_env() -> anyhow::Result<Option<Broker>> {
        let url =
            std::env::var("YIYANG_MQTT_URL").unwrap_or_else(|_| "mqtt://127.0.0.1:1883".into());
        Self::parse(
            &url,
            std::env::var("YIYANG_MQTT_USERNAME").ok(),
            std::env::var("YIYANG_MQTT_PASSWORD").ok(),
            std::env::var("YIYANG_MQTT_CA_FILE").ok().map(Into::into),
        )
    }

    pub fn parse(
        url: &str,
        user: Option<String>,
        password: Option<String>,
        ca_file: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Option<Broker>> {
        let url = url.trim();
        if url.is_empty() || url == "off" {
            return Ok(None);
        }
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            anyhow::bail!("YIYANG_MQTT_URL 应为 mqtt://主机:端口、mqtts://主机:端口 或 off");
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .map_err(|_| anyhow::anyhow!("YIYANG_MQTT_URL 的端口不正确：{p}"))?,
            ),
            None => (rest.to_string(), if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            anyhow::bail!("YIYANG_MQTT_URL 缺少主机名");
        }
        Ok(Some(Broker {
            host,
            port,
            tls,
            user: user.filter(|u| !u.is_empty()),
            password,
            ca_file,
        }))
    }

    pub fn url(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.tls { "mqtts" } else { "mqtt" },
            self.host,
            self.port
        )
    }

    fn options(&self, client_id: &str) -> anyhow::Result<MqttOptions> {
        let mut o = MqttOptions::new(client_id, &self.host, self.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_max_packet_size(64 * 1024, 64 * 1024);
        if let Some(u) = &self.user {
            o.set_credentials(u, self.password.clone().unwrap_or_default());
        }
        if self.tls {
            // ring, not aws-lc (which would need cmake and a C toolchain at build time); the
            // broker's link has no need of post-quantum key exchange.
            #[allow(deprecated)]
            let _ = rustls::crypto::ring::default_provider().install_default();
            let ca = match &self.ca_file {
                Some(f) => std::fs::read(f)
                    .map_err(|e| anyhow::anyhow!("无法读取 MQTT 根证书 {}：{e}", f.display()))?,
                None => anyhow::bail!("mqtts 需要 YIYANG_MQTT_CA_FILE（PEM 格式的根证书文件）"),
            };
            o.set_transport(Transport::tls(ca, None, None));
        }
        Ok(o)
    }
}

/// Subscribe and take messages until the process ends, reconnecting after a lost connection.
/// The broker keeps the session of `client_id` (clean session off): what arrives while the server
/// is down or before a message was acknowledged is delivered again.
pub fn start(db: Db, hub: Arc<Hub>, broker: Broker, client_id: String) -> anyhow::Result<()> {
    let mut o = broker.options(&client_id)?;
    o.set_clean_session(false);
    o.set_manual_acks(true);
    let (client, events) = AsyncClient::new(o, 1024);
    tokio::spawn(run(db, hub, client, events, broker.url()));
    Ok(())
}

async fn run(db: Db, hub: Arc<Hub>, client: AsyncClient, mut events: EventLoop, url: String) {
    let mut connected = false;
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                tracing::info!(broker = %url, session = ack.session_present, "connected to the MQTT broker");
                connected = true;
                // Subscribed again on every connection: a broker that lost the session (restarted
                // without persistence) would otherwise send nothing.
                let c = client.clone();
                tokio::spawn(async move {
                    if let Err(e) = c.subscribe(TOPIC, QoS::AtLeastOnce).await {
                        tracing::error!(error = %e, "MQTT subscribe failed");
                    }
                });
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let (db, hub, client) = (db.clone(), hub.clone(), client.clone());
                tokio::spawn(async move {
                    let serial = yiyang_kernel::emergency::serial_of_topic(&p.topic)
                        .unwrap_or("")
                        .to_string();
                    // Stored (or rejected and recorded) before the broker hears of it; a
                    // database away is waited out, the message held unacknowledged meanwhile.
                    let mut wait = Duration::from_millis(200);
                    loop {
                        match ingest::take(&db, &hub, Source::Mqtt(serial.clone()), &p.payload)
                            .await
                        {
                            Ok(_) => break,
                            Err(e) => {
                                tracing::warn!(error = %e.detail, "device message not stored; trying again");
                                tokio::time::sleep(wait).await;
                                wait = (wait * 2).min(Duration::from_secs(10));
                            }
                        }
                    }
                    if let Err(e) = client.ack(&p).await {
                        tracing::warn!(error = %e, "MQTT acknowledgement not sent");
                    }
                });
            }
            Ok(_) => {}
            Err(e) => {
                if connected {
                    tracing::warn!(broker = %url, error = %e, "MQTT connection lost; reconnecting");
                } else {
                    tracing::debug!(broker = %url, error = %e, "MQTT broker not reachable");
                }
                connected = false;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

/// Publish like `devices` installed devices would: `rate` messages a second for `seconds`
/// (0: until stopped), mostly heartbeats, one in `alarm_every` an alarm. Returns (heartbeats,
/// alarms) sent.
pub async fn simulate(
    broker: &Broker,
    serials: &[String],
    rate: u32,
    seconds: u64,
    alarm_every: u64,
) -> anyhow::Result<(u64, u64)> {
    anyhow::ensure!(!serials.is_empty(), "数据库中没有登记的设备");
    let o = broker.options(&format!("yiyang-sim-{}", std::process::id()))?;
    let (client, mut events) = AsyncClient::new(o, 4096);
    let pump = tokio::spawn(async move {
        loop {
            if let Err(e) = events.poll().await {
                tracing::warn!(error = %e, "simulator: broker connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let types = ingest::alarm_types();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let per_tick = (rate as f64 / 100.0).max(0.0);
    let (mut owed, mut n, mut beats, mut alarms) = (0.0f64, 0u64, 0u64, 0u64);
    let t0 = std::time::Instant::now();
    let run = std::process::id() as u64;
    while seconds == 0 || t0.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            n += 1;
            let serial = &serials[(n as usize * 7919) % serials.len()];
            let alarm = alarm_every > 0 && n % alarm_every == 0;
            let kind = if alarm {
                types[(n / alarm_every.max(1)) as usize % types.len()].as_str()
            } else {
                "heartbeat"
            };
            let body = serde_json::json!({
                "event_id": format!("sim-{run}-{n}"),
                "type": kind,
                "at": chrono::Utc::now().to_rfc3339(),
                "battery": 20 + (n % 80),
            });
            client
                .publish(
                    format!("yiyang/devices/{serial}/events"),
                    QoS::AtLeastOnce,
                    false,
                    body.to_string(),
                )
                .await?;
            if alarm {
                alarms += 1;
            } else {
                beats += 1;
            }
        }
    }
    // Let the last publishes reach the broker.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    pump.abort();
    Ok((beats, alarms))
}

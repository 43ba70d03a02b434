use super::ingest::{self, Outcome, Source};
use super::{BoardEvent, CallReq, DeviceView, EventDetail, EventQuery, StepReq};
use crate::app::AppState;
use crate::audit::Entry;
use crate::identity::{Actor, Perm, Scope};
use crate::platform::error::{ApiError, ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

/// This module's routes (under `/api/v1`).
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/emergency/events", get(list))
        .route("/emergency/events/{id}", get(detail))
        .route("/emergency/events/{id}/steps", post(step))
        .route("/emergency/calls", post(call))
        .route("/emergency/callers", post(callers))
        .route("/emergency/stream", get(stream))
        .route("/emergency/sla", get(get_sla).put(put_sla))
        .route("/devices", get(devices).post(install))
        .route("/devices/summary", get(fleet))
        .route("/devices/{serial}/retire", post(retire))
        .route(
            "/device-events",
            post(device_event).layer(axum::extract::DefaultBodyLimit::max(
                yiyang_kernel::emergency::MAX_MESSAGE_BYTES,
            )),
        )
}

/// Handling events: the permission and an editing scope.
fn handler(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::EmergencyHandle)?;
    if !actor.scopes.edit || !actor.scopes.individuals {
        return Err(ApiError::forbidden(
            "您的账号没有“编辑”和“查询个人”的范围，不能处置紧急呼叫",
        ));
    }
    Ok(actor.scope())
}

/// Reading the board: an operator with names; an officer with figures only sees names masked.
fn reader(actor: &Actor) -> ApiResult<(Scope, bool)> {
    if actor.has(Perm::EmergencyHandle) && actor.scopes.individuals {
        return Ok((actor.scope(), true));
    }
    actor.require(Perm::EmergencyHandle)?;
    actor.aggregates().map(|s| (s, false))
}

/// The events of the caller's area: by default the open ones, most urgent first.
#[utoipa::path(get, path = "/api/v1/emergency/events", tag = "emergency", params(EventQuery),
    responses((status = 200, body = Vec<BoardEvent>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn list(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Vec<BoardEvent>>> {
    let (scope, names) = reader(&actor)?;
    let regions = app.regions.read().await;
    Ok(Json(
        super::list(&app.db, &app.emergency, &regions, &scope, &q, names).await?,
    ))
}

/// One event with its steps and the elder's card (an audited read).
#[utoipa::path(get, path = "/api/v1/emergency/events/{id}", tag = "emergency", params(("id" = String, Path)),
    responses((status = 200, body = EventDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn detail(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> ApiResult<Json<EventDetail>> {
    let (scope, names) = reader(&actor)?;
    let d = {
        let regions = app.regions.read().await;
        super::detail(&app.db, &app.emergency, &regions, &scope, &id, names).await?
    };
    if let Some(e) = &d.elder {
        app.read_audit
            .record(
                &actor.who(),
                Entry {
                    action: "emergency_event.view",
                    entity: "elder",
                    entity_id: Some(&e.id),
                    region_code: Some(&d.event.region_code),
                    detail: serde_json::json!({"event": id}).to_string(),
                },
            )
            .await?;
    }
    Ok(Json(d))
}

/// A step on an event (acknowledge, triage, dispatch, on scene, close), under the id the page
/// made for it: sent again, done once.
#[utoipa::path(post, path = "/api/v1/emergency/events/{id}/steps", tag = "emergency", params(("id" = String, Path)),
    request_body = StepReq,
    responses((status = 200, body = BoardEvent), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn step(
    State(app): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
    Json(s): Json<StepReq>,
) -> ApiResult<Json<BoardEvent>> {
    let scope = handler(&actor)?;
    let r = super::step(&app.db, &app.emergency, &scope, &actor.who(), &id, s).await?;
    let regions = app.regions.read().await;
    Ok(Json(r.view(
        true,
        regions.path_name(&r.region_code),
        super::now_ms(),
        app.emergency.sla(&r.region_code),
    )))
}

/// Enter a call taken on the 12349 line as an event (acknowledged: the operator answered it).
#[utoipa::path(post, path = "/api/v1/emergency/calls", tag = "emergency", request_body = CallReq,
    responses((status = 201, body = BoardEvent), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn call(
    State(app): State<AppState>,
    actor: Actor,
    Json(c): Json<CallReq>,
) -> ApiResult<(StatusCode, Json<BoardEvent>)> {
    let scope = handler(&actor)?;
    let r = super::call(&app.db, &app.emergency, &scope, &actor.who(), c).await?;
    let regions = app.regions.read().await;
    Ok((
        StatusCode::CREATED,
        Json(r.view(
            true,
            regions.path_name(&r.region_code),
            super::now_ms(),
            app.emergency.sla(&r.region_code),
        )),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerQuery {
    /// The number calling in
    pub phone: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Caller {
    pub elder_id: String,
    pub name: String,
    pub region_name: String,
}

/// Who is calling: the elders of the caller's area with this phone number (an audited read). A
/// POST: a number stays out of URLs and logs.
#[utoipa::path(post, path = "/api/v1/emergency/callers", tag = "emergency", request_body = CallerQuery,
    responses((status = 200, body = Vec<Caller>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn callers(
    State(app): State<AppState>,
    actor: Actor,
    Json(q): Json<CallerQuery>,
) -> ApiResult<Json<Vec<Caller>>> {
    let scope = handler(&actor)?;
    let found = super::by_phone(&app.db, &app.keys, &scope, &q.phone).await?;
    let who = actor.who();
    for (id, _, region) in &found {
        app.read_audit
            .record(
                &who,
                Entry {
                    action: "emergency.caller_lookup",
                    entity: "elder",
                    entity_id: Some(id),
                    region_code: Some(region),
                    detail: "{}".into(),
                },
            )
            .await?;
    }
    let regions = app.regions.read().await;
    Ok(Json(
        found
            .into_iter()
            .map(|(elder_id, name, region)| Caller {
                elder_id,
                name,
                region_name: regions.path_name(&region),
            })
            .collect(),
    ))
}

/// How long one live stream runs before the page must connect (and show its session) again.
const STREAM_FOR: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// The board live (server-sent events): `added` and `changed` carry a board row of the caller's
/// area; `resync` asks the page to load the list again (it fell behind). Not in the document's
/// fuzzing: it never ends.
pub async fn stream(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>> {
    let (scope, names) = reader(&actor)?;
    let rx = app.emergency.subscribe();
    let hub = app.emergency.clone();
    let regions = app.regions.clone();
    let until = tokio::time::Instant::now() + STREAM_FOR;
    let s = futures_util::stream::unfold((rx, scope, regions), move |(mut rx, scope, regions)| {
        let hub = hub.clone();
        async move {
            loop {
                let next = tokio::select! {
                    n = rx.recv() => n,
                    // The stream ends: the page connects again, and its session is checked again
                    // (one that ended since is refused there).
                    _ = tokio::time::sleep_until(until) => return None,
                };
                match next {
                    Ok(n) if scope.contains(&n.region_code) => {
                        let row = {
                            let r = regions.read().await;
                            ingest::view(&n, names, &r, &hub)
                        };
                        let ev = Event::default()
                            .event(if n.added { "added" } else { "changed" })
                            .json_data(row)
                            .unwrap_or_else(|_| Event::default().event("resync").data("{}"));
                        return Some((Ok(ev), (rx, scope, regions)));
                    }
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let ev = Event::default().event("resync").data("{}");
                        return Some((Ok(ev), (rx, scope, regions)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Ok(Sse::new(s).keep_alive(KeepAlive::default()))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SlaQuery {
    /// Default: the caller's own region
    pub region_code: Option<String>,
}

/// A region's clocks (its own, an enclosing region's, or the default 60 s / 30 min).
#[utoipa::path(get, path = "/api/v1/emergency/sla", tag = "emergency", params(SlaQuery),
    responses((status = 200, body = super::sla::SlaView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn get_sla(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<SlaQuery>,
) -> ApiResult<Json<super::sla::SlaView>> {
    let (scope, _) = reader(&actor)?;
    let code = match q.region_code.as_deref().filter(|s| !s.is_empty()) {
        Some(c) => scope.region(c)?,
        None => actor.region.clone(),
    };
    let regions = app.regions.read().await;
    Ok(Json(super::sla::view(
        &app.emergency,
        &regions,
        code.as_str(),
    )))
}

/// Set a region's clocks: acknowledged within, someone on scene within (a supervisor).
#[utoipa::path(put, path = "/api/v1/emergency/sla", tag = "emergency", request_body = super::sla::SlaReq,
    responses((status = 200, body = super::sla::SlaView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_sla(
    State(app): State<AppState>,
    actor: Actor,
    Json(req): Json<super::sla::SlaReq>,
) -> ApiResult<Json<super::sla::SlaView>> {
    let scope = supervisor(&actor)?;
    super::sla::put(&app.db, &app.emergency, &scope, &actor.who(), &req).await?;
    let regions = app.regions.read().await;
    Ok(Json(super::sla::view(
        &app.emergency,
        &regions,
        &req.region_code,
    )))
}

/// The devices installed in the caller's area, with their last sign of life (silent: past their
/// allowance).
#[utoipa::path(get, path = "/api/v1/devices", tag = "emergency", params(super::fleet::DeviceQuery),
    responses((status = 200, body = Vec<DeviceView>), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn devices(
    State(app): State<AppState>,
    actor: Actor,
    Query(q): Query<super::fleet::DeviceQuery>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    let (scope, _) = reader(&actor)?;
    Ok(Json(super::fleet::list(&app.db, &scope, &q).await?))
}

/// The fleet of the caller's area: devices by kind and vendor, silent ones, what the government
/// pays a month, open maintenance tasks.
#[utoipa::path(get, path = "/api/v1/devices/summary", tag = "emergency",
    responses((status = 200, body = super::fleet::Fleet), (status = 403, body = Problem)))]
pub async fn fleet(
    State(app): State<AppState>,
    actor: Actor,
) -> ApiResult<Json<super::fleet::Fleet>> {
    let (scope, _) = reader(&actor)?;
    Ok(Json(super::fleet::summary(&app.db, &scope).await?))
}

fn supervisor(actor: &Actor) -> ApiResult<Scope> {
    actor.require(Perm::EmergencySupervise)?;
    if !actor.scopes.edit {
        return Err(ApiError::forbidden("您的账号没有“编辑”的范围"));
    }
    Ok(actor.scope())
}

/// Install a device in an elder's home.
#[utoipa::path(post, path = "/api/v1/devices", tag = "emergency", request_body = super::fleet::NewDevice,
    responses((status = 201, body = DeviceView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn install(
    State(app): State<AppState>,
    actor: Actor,
    Json(d): Json<super::fleet::NewDevice>,
) -> ApiResult<(StatusCode, Json<DeviceView>)> {
    let scope = supervisor(&actor)?;
    Ok((
        StatusCode::CREATED,
        Json(super::fleet::install(&app.db, &app.emergency, &scope, &actor.who(), d).await?),
    ))
}

/// Retire a device (its messages are refused from now on), with the reason.
#[utoipa::path(post, path = "/api/v1/devices/{serial}/retire", tag = "emergency", params(("serial" = String, Path)),
    request_body = super::fleet::RetireReq,
    responses((status = 200, body = DeviceView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn retire(
    State(app): State<AppState>,
    actor: Actor,
    Path(serial): Path<String>,
    Json(r): Json<super::fleet::RetireReq>,
) -> ApiResult<Json<DeviceView>> {
    let scope = supervisor(&actor)?;
    Ok(Json(
        super::fleet::retire(
            &app.db,
            &app.emergency,
            &scope,
            &actor.who(),
            &serial,
            &r.reason,
        )
        .await?,
    ))
}

/// A device's message as a gateway posts it (the MQTT payload plus `serial`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the kernel's parser from the bytes; here for the document
pub struct DeviceEventBody {
    /// The device's serial (1–64 letters, digits, -_.:)
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub serial: String,
    /// The device's own id of this message: sent again, still one event
    #[schema(max_length = 64, pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub event_id: String,
    /// sos / fall / smoke / gas / door / heartbeat / low_battery
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339)
    pub at: String,
    /// 0–100
    pub battery: Option<f64>,
    pub lat: Option<f64>,
    pub lng: Option<f64>,
}

/// A device message from a vendor's gateway, with its bearer token: stored (or recorded as
/// rejected) before the answer. The same event id again is still one event.
#[utoipa::path(post, path = "/api/v1/device-events", tag = "emergency",
    request_body = DeviceEventBody,
    responses((status = 200, body = Outcome), (status = 401, body = Problem), (status = 413, body = Problem),
        (status = 422, body = Problem), (status = 503, body = Problem)))]
pub async fn device_event(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<Json<Outcome>> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 200)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "请在 Authorization 中带上网关令牌（Bearer）",
            )
        })?;
    let gw = ingest::gateway(&app.db, token).await?;
    let out = ingest::take(&app.db, &app.emergency, Source::Http(gw), &body).await?;
    if let Outcome::Rejected { reason } = &out {
        // Recorded; the gateway is told what to fix.
        return Err(ApiError::invalid("body", reason.clone()));
    }
    Ok(Json(out))
}

//! HTTP routes: the WebSocket endpoint, health, metrics, the dev-token endpoint and the page
//! (`web/index.html`, `web/app.js`, `web/style.css`, compiled into the binary).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::config::ServerConfig;
use super::hub::{HubEvent, OUTGOING_QUEUE, Outgoing};
use super::listener::PeerAddr;
use crate::auth;

/// Shared by all handlers.
#[derive(Clone)]
pub struct AppState {
    pub hub: mpsc::Sender<HubEvent>,
    pub config: Arc<ServerConfig>,
    pub connections: Arc<Semaphore>,
}

/// The router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/api/dev-token", get(dev_token))
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/style.css", get(style_css))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("../../web/index.html"),
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../web/app.js"),
    )
}

async fn style_css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../web/style.css"),
    )
}

async fn metrics(State(st): State<AppState>) -> Response {
    let (reply, rx) = oneshot::channel();
    if st.hub.send(HubEvent::Metrics { reply }).await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(mut text)) => {
            let free = st.connections.available_permits();
            let max = st.config.limits.max_connections;
            text.push_str("# HELP roomcam_connection_slots_free Free connection slots.\n");
            text.push_str("# TYPE roomcam_connection_slots_free gauge\n");
            text.push_str(&format!("roomcam_connection_slots_free {free}\n"));
            text.push_str(&format!("roomcam_connection_slots_max {max}\n"));
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        _ => (StatusCode::SERVICE_UNAVAILABLE, "hub did not answer\n").into_response(),
    }
}

#[derive(Deserialize)]
struct DevTokenQuery {
    app_id: u32,
    user_id: String,
    room_id: Option<String>,
    ttl: Option<i64>,
}

/// Development only (`dev_token_endpoint = true`): mints a token for the browser page. Answers
/// loopback callers only: anyone who can reach it could otherwise mint tokens for any user.
async fn dev_token(
    State(st): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    Query(q): Query<DevTokenQuery>,
) -> Response {
    if !st.config.dev_token_endpoint {
        return (
            StatusCode::NOT_FOUND,
            "dev token endpoint is off (dev_token_endpoint = false)\n",
        )
            .into_response();
    }
    if !is_loopback(peer.ip()) {
        tracing::warn!(%peer, "dev token refused: not a loopback caller");
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({
                "error": format!(
                    "dev tokens are minted for loopback callers only (this request came from {}); \
                     mint tokens with `roomcam-server token` or your own backend",
                    peer.ip()
                )
            })),
        )
            .into_response();
    }
    let Some(app) = st.config.apps.iter().find(|a| a.app_id == q.app_id) else {
        return (StatusCode::BAD_REQUEST, "unknown app id\n").into_response();
    };
    if crate::protocol::ids::validate_user_id(&q.user_id).is_err() {
        return (StatusCode::BAD_REQUEST, "invalid user id\n").into_response();
    }
    let now_unix = super::hub::now().unix;
    let req = auth::MintRequest {
        app_id: q.app_id,
        user_id: q.user_id,
        room_id: q.room_id.filter(|r| !r.is_empty()),
        privileges: auth::Privileges::default(),
        stream_ids: Vec::new(),
        now_unix,
        ttl_secs: q.ttl.unwrap_or(3600).clamp(60, 24 * 3600),
    };
    match auth::token04::mint(&req, &app.server_secret, &mut rand::thread_rng()) {
        Ok(token) => Json(serde_json::json!({"token": token, "expire": now_unix + req.ttl_secs}))
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Loopback, also as an IPv4-mapped IPv6 address (`::ffff:127.0.0.1` on a dual-stack socket).
fn is_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        v4 => v4.is_loopback(),
    }
}

async fn ws_upgrade(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = st.connections.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many connections\n").into_response();
    };
    // Frames above the configured limit get an error from the room logic; far larger ones are
    // refused by the WebSocket layer itself.
    let cap = st
        .config
        .limits
        .message_bytes
        .saturating_mul(4)
        .max(64 * 1024);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| async move {
            connection(socket, st.hub).await;
            drop(permit);
        })
}

/// One WebSocket connection: a reader feeding the hub and a writer draining the session queue.
async fn connection(socket: WebSocket, hub: mpsc::Sender<HubEvent>) {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(OUTGOING_QUEUE);
    let (reply, id_rx) = oneshot::channel();
    if hub.send(HubEvent::Connect { tx, reply }).await.is_err() {
        return;
    }
    let Ok(session) = id_rx.await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            match out {
                Outgoing::Message(m) => {
                    let text = match serde_json::to_string(&*m) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!(%session, error = %e, "cannot serialize message");
                            continue;
                        }
                    };
                    let send = sink.send(Message::Text(text.into()));
                    match tokio::time::timeout(Duration::from_secs(10), send).await {
                        Ok(Ok(())) => {}
                        _ => break,
                    }
                }
                Outgoing::Close => break,
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Close(None))).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
    });
    let reader_hub = hub.clone();
    let mut writer = writer;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let ev = match frame {
                    Some(Ok(Message::Text(t))) => HubEvent::Text { session, text: t.to_string() },
                    Some(Ok(Message::Binary(_))) => HubEvent::Binary { session },
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        tracing::debug!(%session, error = %e, "websocket read error");
                        break;
                    }
                };
                if reader_hub.send(ev).await.is_err() {
                    break;
                }
            }
            _ = &mut writer => {
                // The server closed this session (kick, shutdown, slow consumer).
                let _ = reader_hub.send(HubEvent::Disconnect { session }).await;
                // Linger: read (and drop) what the client still sends, so that closing with
                // unread input does not reset the connection and destroy the `kicked` message
                // in flight to it.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = stream.next().await {}
                })
                .await;
                return;
            }
        }
    }
    let _ = hub.send(HubEvent::Disconnect { session }).await;
    // Let the writer flush what the room logic queued, then stop it.
    if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

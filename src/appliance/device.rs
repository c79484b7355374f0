//! The device's run loop: one engine, logged into the configured room, publishing with
//! `auto_join` and playing every remote stream, renewing its token, retrying a failed login
//! forever (an appliance never exits on network loss), and serving `GET /status`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::config::{Auth, DeviceConfig};
use super::status::{CallState, MediaStats, status_json};
use crate::engine::{
    Credential, Engine, EngineError, EngineOptions, EngineProfile, EngineStatus, Event,
    MediaBackend, PublisherState, RoomState, RoomStateReason,
};
use crate::protocol::UpdateType;

/// Why the device could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot serve the status endpoint on {addr}: {source}")]
    Status {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Reads the token from the config or its file.
pub fn credential(cfg: &DeviceConfig) -> Result<Credential, DeviceError> {
    Ok(match cfg.auth() {
        Auth::Token(t) => Credential::Token(t),
        Auth::AppSign(s) => Credential::AppSign(s),
        Auth::TokenFile(path) => {
            let t = std::fs::read_to_string(&path)
                .map_err(|source| DeviceError::TokenFile { path, source })?;
            Credential::Token(t.trim().to_string())
        }
    })
}

/// Live view of the device for the status endpoint.
#[derive(Clone)]
pub struct DeviceView {
    pub call: Arc<Mutex<CallState>>,
    pub engine: Arc<Mutex<EngineStatus>>,
    pub media: Arc<dyn Fn() -> MediaStats + Send + Sync>,
    pub room_id: String,
    pub stream_id: String,
}

impl DeviceView {
    /// The status document now.
    pub fn status(&self) -> serde_json::Value {
        let call = self.call.lock().map(|c| *c).unwrap_or(CallState::Error);
        let engine = self.engine.lock().map(|e| e.clone()).unwrap_or_default();
        status_json(
            call,
            &self.room_id,
            &self.stream_id,
            &engine,
            &(self.media)(),
        )
    }
}

/// Serves `GET /status` until the returned task is aborted.
pub async fn serve_status(
    addr: SocketAddr,
    view: DeviceView,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), DeviceError> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DeviceError::Status { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DeviceError::Status { addr, source })?;
    let app = axum::Router::new().route(
        "/status",
        get(move || {
            let v = view.clone();
            async move { axum::Json(v.status()) }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((task, bound))
}

/// Runs the device until `shutdown` completes, then logs out (peers see DELETE at once).
/// `media_stats` reads the media pipelines' counters for the status endpoint.
pub async fn run(
    cfg: DeviceConfig,
    backend: Box<dyn MediaBackend>,
    media_stats: Arc<dyn Fn() -> MediaStats + Send + Sync>,
    shutdown: impl Future<Output = ()>,
    on_status_addr: impl FnOnce(SocketAddr),
) -> Result<(), DeviceError> {
    let profile = EngineProfile {
        app_id: cfg.identity.app_id,
        user_id: cfg.identity.user_id.clone(),
        user_name: cfg.user_name(),
        credential: credential(&cfg)?,
        scenario: 0,
    };
    let mut opts = EngineOptions::new(&cfg.server.url);
    opts.allow_insecure = cfg.server.allow_insecure;
    let (engine, mut events) = Engine::create(profile, opts, backend).await?;
    let view = DeviceView {
        call: Arc::new(Mutex::new(CallState::Joining)),
        engine: Arc::new(Mutex::new(EngineStatus::default())),
        media: media_stats,
        room_id: cfg.room.id.clone(),
        stream_id: cfg.stream_id(),
    };
    let status_task = match cfg.status.listen {
        Some(addr) => {
            let (t, bound) = serve_status(addr, view.clone()).await?;
            tracing::info!(%bound, "status endpoint: GET /status");
            on_status_addr(bound);
            Some(t)
        }
        None => None,
    };
    let mut device = Device {
        cfg,
        engine,
        view,
        retry_at: None,
    };
    device.login();
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            e = events.recv() => match e {
                Some(e) => device.on_event(e),
                None => break,
            },
            _ = tick.tick() => device.tick(),
        }
    }
    tracing::info!("stopping: logging out");
    if let Ok(mut c) = device.view.call.lock() {
        *c = CallState::Ending;
    }
    device.engine.destroy().await;
    if let Some(t) = status_task {
        t.abort();
    }
    Ok(())
}

struct Device {
    cfg: DeviceConfig,
    engine: Engine,
    view: DeviceView,
    retry_at: Option<tokio::time::Instant>,
}

impl Device {
    fn login(&mut self) {
        let token = match credential(&self.cfg) {
            Ok(Credential::Token(t)) => Some(t),
            Ok(Credential::AppSign(_)) => None,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token; retrying later");
                self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(5));
                return;
            }
        };
        self.set_call(CallState::Joining);
        let _ = self.engine.login_room(&self.cfg.room.id, true, token);
    }

    fn set_call(&self, c: CallState) {
        if let Ok(mut s) = self.view.call.lock() {
            *s = c;
        }
    }

    fn tick(&mut self) {
        if let Ok(mut s) = self.view.engine.lock() {
            *s = self.engine.status();
        }
        if self
            .retry_at
            .is_some_and(|t| tokio::time::Instant::now() >= t)
        {
            self.retry_at = None;
            self.login();
        }
    }

    fn on_event(&mut self, e: Event) {
        tracing::info!(event = ?e, "engine event");
        match e {
            Event::RoomStateUpdate {
                state,
                reason,
                error_code,
                ..
            } => match (state, reason) {
                (RoomState::Connected, RoomStateReason::Logined) => {
                    if self.cfg.room.auto_join {
                        let _ = self
                            .engine
                            .start_publishing_stream(&self.cfg.stream_id(), "");
                        self.set_call(CallState::InCall);
                    } else {
                        self.set_call(CallState::Standby);
                    }
                }
                (RoomState::Connected, _) => {}
                (RoomState::Connecting, _) => self.set_call(CallState::Joining),
                (RoomState::Disconnected, _) => {
                    // Never give up: try again (a kicked or refused device retries slowly).
                    let wait = if error_code == 0 { 2 } else { 10 };
                    tracing::warn!(
                        error_code,
                        ?reason,
                        "not in the room; trying again in {wait} s"
                    );
                    self.set_call(CallState::Error);
                    self.retry_at = Some(tokio::time::Instant::now() + Duration::from_secs(wait));
                }
            },
            Event::RoomStreamUpdate {
                update_type,
                streams,
                ..
            } => {
                for s in streams {
                    match update_type {
                        UpdateType::Add if self.cfg.room.auto_join => {
                            let _ = self.engine.start_playing_stream(&s.stream_id);
                        }
                        UpdateType::Delete => {
                            let _ = self.engine.stop_playing_stream(&s.stream_id);
                        }
                        _ => {}
                    }
                }
            }
            Event::TokenWillExpire { .. } => {
                // A token file that changed gives the new token; otherwise the room service
                // mints a fresh one with the same privileges.
                let fresh = match (self.cfg.auth(), credential(&self.cfg)) {
                    (Auth::TokenFile(_), Ok(Credential::Token(t))) => Some(t),
                    _ => None,
                };
                let _ = self.engine.renew_token(fresh);
            }
            Event::PublisherStateUpdate {
                state: PublisherState::NoPublish,
                error_code,
                ..
            } if error_code != 0 => {
                tracing::error!(error_code, "publishing failed");
            }
            _ => {}
        }
    }
}

/// A channel pair for tests that want to stop a device.
pub fn shutdown_channel() -> (mpsc::Sender<()>, impl Future<Output = ()>) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    (tx, async move {
        let _ = rx.recv().await;
    })
}

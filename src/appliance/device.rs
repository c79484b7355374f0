//! The device's run loop: the thin adapter around the [`CallMachine`] and the engine. It feeds
//! the machine button edges and engine events, carries out its actions (engine commands, LEDs,
//! volume), renews the token (from `token_file` when it changed), tells systemd it is ready and
//! alive, and serves `GET /status`. It never exits on network loss.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::call::{Action, CallMachine, CallPolicy, Input, Led};
use super::config::{Auth, DeviceConfig};
use super::status::{CallState, MediaStats, status_json};
use crate::engine::{
    Credential, Engine, EngineError, EngineOptions, EngineProfile, EngineStatus, Event,
    MediaBackend, PublisherState, RoomState,
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
    #[error(transparent)]
    Gpio(#[from] super::gpio::GpioError),
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

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Asked to stop (SIGTERM): logged out.
    Shutdown,
    /// Asked to re-read the config and start again (SIGHUP, or a long press of the call button).
    Reload,
}

/// Runs the device until `shutdown` completes (then logs out: peers see DELETE at once) or a
/// reload is asked for (`reload` fires, or the call button is held). `media_stats` reads the
/// pipelines' counters for the status endpoint.
pub async fn run(
    cfg: DeviceConfig,
    backend: Box<dyn MediaBackend>,
    media_stats: Arc<dyn Fn() -> MediaStats + Send + Sync>,
    shutdown: impl Future<Output = ()>,
    on_status_addr: impl FnOnce(SocketAddr),
) -> Result<Exit, DeviceError> {
    run_with_reload(
        cfg,
        backend,
        media_stats,
        shutdown,
        std::future::pending(),
        on_status_addr,
    )
    .await
}

/// Like [`run`], with a future that asks for a reload.
pub async fn run_with_reload(
    cfg: DeviceConfig,
    backend: Box<dyn MediaBackend>,
    media_stats: Arc<dyn Fn() -> MediaStats + Send + Sync>,
    shutdown: impl Future<Output = ()>,
    reload: impl Future<Output = ()>,
    on_status_addr: impl FnOnce(SocketAddr),
) -> Result<Exit, DeviceError> {
    run_with_screen(
        cfg,
        backend,
        media_stats,
        None,
        shutdown,
        reload,
        on_status_addr,
    )
    .await
}

/// Like [`run_with_reload`], keeping `screen`'s idle card up to date (what the device is doing:
/// `super::idle_text`).
pub async fn run_with_screen(
    cfg: DeviceConfig,
    backend: Box<dyn MediaBackend>,
    media_stats: Arc<dyn Fn() -> MediaStats + Send + Sync>,
    screen: Option<crate::media::Screen>,
    shutdown: impl Future<Output = ()>,
    reload: impl Future<Output = ()>,
    on_status_addr: impl FnOnce(SocketAddr),
) -> Result<Exit, DeviceError> {
    let profile = EngineProfile {
        app_id: cfg.identity.app_id,
        user_id: cfg.identity.user_id.clone(),
        user_name: cfg.user_name(),
        credential: credential(&cfg)?,
        scenario: 0,
    };
    let mut opts = EngineOptions::new(&cfg.server.url);
    opts.allow_insecure = cfg.server.allow_insecure;
    // Buttons and LEDs first: a wrong line is a config error worth failing on.
    let (button_tasks, mut buttons, leds) = match &cfg.gpio {
        Some(g) => {
            let (tasks, rx) = super::gpio::open_buttons(g)?;
            (tasks, Some(rx), Some(super::gpio::Leds::open(g)?))
        }
        None => (Vec::new(), None, None),
    };
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
    let now = std::time::Instant::now();
    let machine = CallMachine::new(now, policy(&cfg));
    let token_mtime = token_file_mtime(&cfg);
    let mut device = Device {
        cfg,
        engine,
        view,
        machine,
        leds,
        token_mtime,
        exit: None,
        progress: Progress::default(),
        screen,
    };
    device.apply_actions();
    super::systemd::notify("READY=1");
    let watchdog = super::systemd::watchdog_interval();
    let mut last_ping = tokio::time::Instant::now();
    tokio::pin!(shutdown);
    tokio::pin!(reload);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let exit = loop {
        tokio::select! {
            _ = &mut shutdown => break Exit::Shutdown,
            _ = &mut reload => break Exit::Reload,
            e = events.recv() => match e {
                Some(e) => device.on_event(e),
                None => break Exit::Shutdown,
            },
            b = async {
                match buttons.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match b {
                Some((button, pressed)) => device.input(Input::Button { button, pressed }),
                None => buttons = None,
            },
            _ = tick.tick() => device.tick(),
        }
        if let Some(e) = device.exit.take() {
            break e;
        }
        // The watchdog is fed while this loop turns and, during a call, while media advances:
        // a stuck pipeline gets the process restarted, a network outage does not.
        if let Some(every) = watchdog
            && last_ping.elapsed() >= every
            && device.healthy()
        {
            super::systemd::notify("WATCHDOG=1");
            last_ping = tokio::time::Instant::now();
        }
    };
    super::systemd::notify(match exit {
        Exit::Shutdown => "STOPPING=1",
        Exit::Reload => "RELOADING=1",
    });
    tracing::info!(?exit, "logging out");
    if let Ok(mut c) = device.view.call.lock() {
        *c = CallState::Ending;
    }
    if let Some(l) = &device.leds {
        l.set(Led::Status, false);
        l.set(Led::Camera, false);
    }
    device.engine.destroy().await;
    for t in button_tasks {
        t.abort();
    }
    if let Some(t) = status_task {
        t.abort();
    }
    Ok(exit)
}

fn policy(cfg: &DeviceConfig) -> CallPolicy {
    CallPolicy {
        auto_join: cfg.room.auto_join,
        presence: cfg.room.presence,
        long_press: Duration::from_secs_f64(
            cfg.gpio.as_ref().map(|g| g.long_press_s).unwrap_or(5.0),
        ),
        retry_after: Duration::from_secs(10),
    }
}

fn token_file_mtime(cfg: &DeviceConfig) -> Option<std::time::SystemTime> {
    match cfg.auth() {
        Auth::TokenFile(p) => std::fs::metadata(p).and_then(|m| m.modified()).ok(),
        _ => None,
    }
}

/// Media progress, for the watchdog.
#[derive(Default)]
struct Progress {
    frames: u64,
    since: Option<std::time::Instant>,
}

struct Device {
    cfg: DeviceConfig,
    engine: Engine,
    view: DeviceView,
    machine: CallMachine,
    leds: Option<super::gpio::Leds>,
    token_mtime: Option<std::time::SystemTime>,
    exit: Option<Exit>,
    progress: Progress,
    screen: Option<crate::media::Screen>,
}

impl Device {
    fn input(&mut self, i: Input) {
        self.machine.handle_input(std::time::Instant::now(), i);
        self.apply_actions();
    }

    fn apply_actions(&mut self) {
        while let Some(a) = self.machine.poll_action() {
            tracing::debug!(action = ?a, "call action");
            let r = match a {
                Action::Login => {
                    let token = match credential(&self.cfg) {
                        Ok(Credential::Token(t)) => Some(t),
                        Ok(Credential::AppSign(_)) => None,
                        Err(e) => {
                            tracing::error!(error = %e, "cannot read the token");
                            self.machine.handle_input(
                                std::time::Instant::now(),
                                Input::Disconnected {
                                    error_code: crate::protocol::ErrorCode::NoCredentials.code(),
                                },
                            );
                            continue;
                        }
                    };
                    self.engine.login_room(&self.cfg.room.id, true, token)
                }
                Action::Logout => self.engine.logout_room(&self.cfg.room.id),
                Action::StartPublishing => self
                    .engine
                    .start_publishing_stream(&self.cfg.stream_id(), ""),
                Action::StopPublishing => self.engine.stop_publishing_stream(&self.cfg.stream_id()),
                Action::Play(s) => self.engine.start_playing_stream(&s),
                Action::StopPlay(s) => self.engine.stop_playing_stream(&s),
                Action::SetMicMuted(m) => self.engine.mute_microphone(m),
                Action::SetCameraOff(off) => self.engine.enable_camera(!off),
                Action::Volume(steps) => {
                    let dev = super::volume::mixer_device(&self.cfg.audio.playback);
                    match super::volume::change(&dev, steps) {
                        Ok(level) => tracing::info!(level, "volume"),
                        Err(e) => tracing::warn!(error = %e, "cannot change the volume"),
                    }
                    Ok(())
                }
                Action::ReloadConfig => {
                    self.exit = Some(Exit::Reload);
                    Ok(())
                }
                Action::Led { led, on } => {
                    if let Some(l) = &self.leds {
                        l.set(led, on);
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                tracing::error!(error = %e, "engine request failed");
            }
        }
        if let Ok(mut c) = self.view.call.lock() {
            *c = self.machine.state();
        }
        self.update_idle_text();
    }

    /// The screen's idle card says what the device is doing (shown when nobody is on screen).
    fn update_idle_text(&self) {
        let Some(screen) = &self.screen else {
            return;
        };
        let others: Vec<&str> = self.machine.remote_names().collect();
        let camera_unavailable =
            self.machine.state() == CallState::InCall && (self.view.media)().camera_unavailable;
        screen.set_idle_text(&super::idle_text::idle_text(
            self.machine.state(),
            &self.cfg.room.id,
            &others,
            camera_unavailable,
        ));
    }

    fn tick(&mut self) {
        let now = std::time::Instant::now();
        let status = self.engine.status();
        let frames: u64 = status
            .publishers
            .values()
            .map(|p| p.video_frames_sent + p.audio_frames_sent)
            .chain(
                status
                    .players
                    .values()
                    .map(|p| p.video_frames_received + p.audio_frames_received),
            )
            .sum();
        if frames != self.progress.frames || self.progress.since.is_none() {
            self.progress.frames = frames;
            self.progress.since = Some(now);
        }
        if let Ok(mut s) = self.view.engine.lock() {
            *s = status;
        }
        // A token file that changed is handed to the engine at once.
        let mtime = token_file_mtime(&self.cfg);
        if mtime.is_some() && mtime != self.token_mtime {
            self.token_mtime = mtime;
            if let Ok(Credential::Token(t)) = credential(&self.cfg) {
                tracing::info!("token file changed: renewing the session's token");
                let _ = self.engine.renew_token(Some(t));
            }
        }
        self.machine.handle_timeout(now);
        self.apply_actions();
    }

    /// Whether media advances as it should: outside a call, always; in a call, some frame moved
    /// within the last 10 s.
    fn healthy(&self) -> bool {
        let in_call = self.machine.state() == CallState::InCall
            && self.engine.status().room_state == Some(RoomState::Connected);
        !in_call
            || self
                .progress
                .since
                .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
    }

    fn on_event(&mut self, e: Event) {
        tracing::info!(event = ?e, "engine event");
        let input = match e {
            Event::RoomStateUpdate {
                state, error_code, ..
            } => match state {
                RoomState::Connected => Some(Input::LoggedIn),
                RoomState::Connecting => {
                    if self.machine.state() == CallState::Joining {
                        None
                    } else {
                        Some(Input::Reconnecting)
                    }
                }
                RoomState::Disconnected => Some(Input::Disconnected { error_code }),
            },
            Event::RoomStreamUpdate {
                update_type,
                streams,
                ..
            } => {
                for s in streams {
                    let i = match update_type {
                        UpdateType::Add => Input::StreamAdded {
                            stream_id: s.stream_id,
                            user_name: if s.user_name.is_empty() {
                                s.user_id
                            } else {
                                s.user_name
                            },
                        },
                        UpdateType::Delete => Input::StreamRemoved {
                            stream_id: s.stream_id,
                        },
                    };
                    self.input(i);
                }
                None
            }
            Event::TokenWillExpire { .. } => {
                // A token file that changed gives the new token; otherwise the room service
                // mints a fresh one with the same privileges.
                let fresh = match (self.cfg.auth(), credential(&self.cfg)) {
                    (Auth::TokenFile(_), Ok(Credential::Token(t))) => Some(t),
                    _ => None,
                };
                let _ = self.engine.renew_token(fresh);
                None
            }
            Event::PublisherStateUpdate {
                state, error_code, ..
            } => {
                if state == PublisherState::NoPublish && error_code != 0 {
                    tracing::error!(error_code, "publishing failed");
                }
                Some(Input::Publishing(state == PublisherState::Publishing))
            }
            _ => None,
        };
        if let Some(i) = input {
            self.input(i);
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

//! The engine's tokio adapter: runs an [`EngineCore`] over a WebSocket to the room service and
//! one UDP socket for media, and moves encoded frames between the core and a
//! [`MediaBackend`] (GStreamer on a device; anything that makes and takes frames in tests).
//! All the decisions are the core's; this file only moves bytes and keeps time.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::protocol::ErrorCode;

use super::core::{Command, CoreOutput, EngineConfig, EngineCore, EngineProfile};
use super::events::{Event, PlayerState, PublisherState, RoomState};
use super::media_session::{ReceivedFrame, TrackKind};
use super::media_worker::{MediaWorker, Started};
use super::tcp_link::{LinkEvent, TcpLink};
use super::wss::{Trust, TrustError};
use crate::ice_tcp::Transport;

/// Why the engine could not start or take a request.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "refusing to send credentials over plain ws:// to {host}: use wss://, or set [server] allow_insecure = true"
    )]
    Insecure { host: String },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("cannot open the media UDP socket: {0}")]
    Udp(std::io::Error),
    #[error("cannot start the media worker thread: {0}")]
    Worker(std::io::Error),
    #[error("the engine was destroyed")]
    Gone,
}

/// One encoded frame from a capture pipeline.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub stream_id: String,
    pub kind: TrackKind,
    /// Presentation time from the capture pipeline's clock (monotonic).
    pub pts: Duration,
    pub data: Vec<u8>,
}

/// A running capture (camera + mic → encoders) for one published stream.
pub trait CaptureControl: Send {
    /// Encode a keyframe as soon as possible.
    fn request_keyframe(&mut self);
    /// Follow the network's estimate (the backend clamps it to its floor and ceiling).
    fn set_target_bitrate(&mut self, bps: u64);
}

/// A running playback (decoders → screen + speaker) for one played stream.
pub trait PlaybackSink: Send {
    /// A frame with the sender's RTP time. Returns true when the decoder needs a keyframe
    /// (it lost its place): the engine then asks the publisher for one.
    fn push(&mut self, frame: &ReceivedFrame) -> bool;
}

/// Where frames come from and go to.
pub trait MediaBackend: Send + 'static {
    /// Starts capturing for `stream_id`; encoded frames go to `frames`.
    fn start_capture(
        &mut self,
        stream_id: &str,
        frames: mpsc::Sender<EncodedFrame>,
    ) -> Result<Box<dyn CaptureControl>, String>;
    /// Starts decoding and showing `stream_id`.
    fn start_playback(&mut self, stream_id: &str) -> Result<Box<dyn PlaybackSink>, String>;
    /// Starts the local preview (the camera on the screen, nothing sent); dropping the returned
    /// guard stops it. Backends without a screen say so.
    fn start_preview(&mut self) -> Result<Box<dyn Send>, String> {
        Err("this media backend has no preview".into())
    }
}

/// How to reach the room service.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// `ws://host:port/ws` (or `wss://`).
    pub server_url: String,
    /// Send credentials over plain `ws://` to a non-loopback host.
    pub allow_insecure: bool,
    /// For `wss://`: trust only the CA certificates in this PEM file (else the system's roots).
    pub ca_file: Option<PathBuf>,
    /// Address to bind the media UDP socket to (port 0 = any).
    pub media_bind: SocketAddr,
    pub config: EngineConfig,
}

impl EngineOptions {
    pub fn new(server_url: &str) -> Self {
        EngineOptions {
            server_url: server_url.to_string(),
            allow_insecure: false,
            ca_file: None,
            media_bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            config: EngineConfig::default(),
        }
    }
}

/// Counters and states for the status endpoint.
#[derive(Debug, Clone, Default)]
pub struct EngineStatus {
    pub room_id: Option<String>,
    pub room_state: Option<RoomState>,
    pub reason: Option<String>,
    pub error_code: u32,
    pub publishers: HashMap<String, PublisherStatus>,
    pub players: HashMap<String, PlayerStatus>,
    /// Latest bandwidth estimate (bits per second).
    pub target_bitrate_bps: u64,
    /// The transport media goes over while connected: UDP, or TCP after the ICE-TCP fallback.
    pub media_transport: Option<Transport>,
}

#[derive(Debug, Clone)]
pub struct PublisherStatus {
    pub state: PublisherState,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    pub bytes_sent: u64,
}

#[derive(Debug, Clone)]
pub struct PlayerStatus {
    pub state: PlayerState,
    pub user_id: String,
    pub video_frames_received: u64,
    pub audio_frames_received: u64,
}

enum Request {
    Command(Command),
    Preview(bool),
    Destroy(oneshot::Sender<()>),
}

/// The engine: create it once per process, give it commands, read its events.
pub struct Engine {
    tx: mpsc::UnboundedSender<Request>,
    status: Arc<Mutex<EngineStatus>>,
    task: tokio::task::JoinHandle<()>,
    media_addr: SocketAddr,
}

/// Checks the server URL before anything connects: credentials (a token or an app-sign proof)
/// never go over plain `ws://` to a non-loopback host unless `allow_insecure`. Returns the host
/// and whether the URL is `wss://`.
fn check_url(url: &str, allow_insecure: bool) -> Result<(String, bool), EngineError> {
    let bad = |reason: &str| EngineError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let (rest, secure) = if let Some(r) = url.strip_prefix("ws://") {
        (r, false)
    } else if let Some(r) = url.strip_prefix("wss://") {
        (r, true)
    } else {
        return Err(bad("must start with ws:// or wss://"));
    };
    let host_port = rest.split('/').next().unwrap_or("");
    let host = host_port
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(host_port)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let loopback = host == "localhost"
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !secure && !loopback && !allow_insecure {
        return Err(EngineError::Insecure {
            host: host.to_string(),
        });
    }
    Ok((host.to_string(), secure))
}

impl Engine {
    /// Creates the engine (the seed's `createEngineWithProfile`) and its event stream.
    pub async fn create(
        profile: EngineProfile,
        options: EngineOptions,
        backend: Box<dyn MediaBackend>,
    ) -> Result<(Engine, mpsc::UnboundedReceiver<Event>), EngineError> {
        let (host, secure) = check_url(&options.server_url, options.allow_insecure)?;
        let trust = if secure {
            Some(Trust::new(options.ca_file.as_deref())?)
        } else {
            None
        };
        let udp = UdpSocket::bind(options.media_bind)
            .await
            .map_err(EngineError::Udp)?;
        let mut media_addr = udp.local_addr().map_err(EngineError::Udp)?;
        if media_addr.ip().is_unspecified() {
            // The host candidate must be an address the server can send to: the server's own
            // view of us is unknown here, so use the loopback for a loopback server and the
            // unspecified address's route otherwise (resolved by a connected probe socket).
            media_addr.set_ip(local_ip_towards(&options.server_url).await);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(EngineStatus::default()));
        let core = EngineCore::new(
            Instant::now(),
            profile,
            options.config,
            media_addr,
            rand::random(),
        );
        let (media, started) = MediaWorker::spawn(backend).map_err(EngineError::Worker)?;
        let run = Runtime {
            core,
            options,
            host,
            trust,
            udp: Arc::new(udp),
            rx,
            events: ev_tx,
            status: status.clone(),
            media,
            started,
            pending_captures: HashMap::new(),
            pending_playbacks: HashMap::new(),
            pending_preview: None,
            next_generation: 0,
            target_bps: None,
            captures: HashMap::new(),
            playbacks: HashMap::new(),
            ws_out: None,
            ws_in: None,
            connecting: None,
            rtp_base: HashMap::new(),
            keyframe_asked: HashMap::new(),
            preview: None,
            tcp: None,
        };
        let task = tokio::spawn(run.run());
        Ok((
            Engine {
                tx,
                status,
                task,
                media_addr,
            },
            ev_rx,
        ))
    }

    fn send(&self, c: Command) -> Result<(), EngineError> {
        self.tx
            .send(Request::Command(c))
            .map_err(|_| EngineError::Gone)
    }

    /// The media socket's address (the ICE host candidate).
    pub fn media_addr(&self) -> SocketAddr {
        self.media_addr
    }

    /// Logs into a room (creating it if needed). `token` replaces the profile's token.
    pub fn login_room(
        &self,
        room_id: &str,
        user_updates: bool,
        token: Option<String>,
    ) -> Result<(), EngineError> {
        self.send(Command::LoginRoom {
            room_id: room_id.to_string(),
            user_updates,
            token,
        })
    }

    /// Leaves the room: stops all publishing and playing; peers see DELETE at once.
    pub fn logout_room(&self, room_id: &str) -> Result<(), EngineError> {
        self.send(Command::LogoutRoom {
            room_id: room_id.to_string(),
        })
    }

    pub fn start_publishing_stream(
        &self,
        stream_id: &str,
        extra_info: &str,
    ) -> Result<(), EngineError> {
        self.send(Command::StartPublishing {
            stream_id: stream_id.to_string(),
            extra_info: extra_info.to_string(),
        })
    }

    pub fn stop_publishing_stream(&self, stream_id: &str) -> Result<(), EngineError> {
        self.send(Command::StopPublishing {
            stream_id: stream_id.to_string(),
        })
    }

    pub fn start_playing_stream(&self, stream_id: &str) -> Result<(), EngineError> {
        self.send(Command::StartPlaying {
            stream_id: stream_id.to_string(),
        })
    }

    pub fn stop_playing_stream(&self, stream_id: &str) -> Result<(), EngineError> {
        self.send(Command::StopPlaying {
            stream_id: stream_id.to_string(),
        })
    }

    /// The seed's `startPreview`: show the local camera (before publishing).
    pub fn start_preview(&self) -> Result<(), EngineError> {
        self.tx
            .send(Request::Preview(true))
            .map_err(|_| EngineError::Gone)
    }

    /// The seed's `stopPreview`.
    pub fn stop_preview(&self) -> Result<(), EngineError> {
        self.tx
            .send(Request::Preview(false))
            .map_err(|_| EngineError::Gone)
    }

    /// Renews the room token: with `Some`, use that token; with `None`, the room service mints one.
    pub fn renew_token(&self, token: Option<String>) -> Result<(), EngineError> {
        self.send(Command::RenewToken { token })
    }

    /// The seed's `muteMicrophone`: stop (or resume) sending audio; the stream stays published.
    pub fn mute_microphone(&self, mute: bool) -> Result<(), EngineError> {
        self.send(Command::MuteMicrophone(mute))
    }

    /// The seed's `enableCamera`: stop (or resume) sending video; the stream stays published.
    pub fn enable_camera(&self, enable: bool) -> Result<(), EngineError> {
        self.send(Command::EnableCamera(enable))
    }

    /// A snapshot of states and counters.
    pub fn status(&self) -> EngineStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Destroys the engine: logs out, stops every pipeline and closes the sockets. Returns when
    /// done (at most a few seconds).
    pub async fn destroy(self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Request::Destroy(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
        self.task.abort();
    }
}

/// Whether `generation` is the start still wanted for `stream_id` (then it is no longer pending).
fn take_pending(pending: &mut HashMap<String, u64>, stream_id: &str, generation: u64) -> bool {
    let wanted = pending.get(stream_id) == Some(&generation);
    if wanted {
        pending.remove(stream_id);
    }
    wanted
}

/// The local address the OS would use towards the server (for the ICE host candidate).
async fn local_ip_towards(url: &str) -> IpAddr {
    let host_port = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or("127.0.0.1:80")
        .to_string();
    let probe = async {
        let target = tokio::net::lookup_host(&host_port).await.ok()?.next()?;
        if target.ip().is_loopback() {
            return Some(target.ip());
        }
        let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))
            .await
            .ok()?;
        s.connect(target).await.ok()?;
        Some(s.local_addr().ok()?.ip())
    };
    tokio::time::timeout(Duration::from_secs(3), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Runtime {
    core: EngineCore,
    options: EngineOptions,
    /// The server's host (from the URL), for messages.
    host: String,
    /// For `wss://`: the CAs trusted for the server's certificate.
    trust: Option<Trust>,
    udp: Arc<UdpSocket>,
    rx: mpsc::UnboundedReceiver<Request>,
    events: mpsc::UnboundedSender<Event>,
    status: Arc<Mutex<EngineStatus>>,
    /// Starts and stops pipelines off this loop (they can take seconds on a slow board).
    media: MediaWorker,
    started: mpsc::UnboundedReceiver<Started>,
    /// Starts asked of the worker and not yet answered, by stream: the generation of the
    /// latest request (an answer to an older or cancelled one is retired).
    pending_captures: HashMap<String, u64>,
    pending_playbacks: HashMap<String, u64>,
    pending_preview: Option<u64>,
    next_generation: u64,
    /// The latest bandwidth estimate, for a capture that starts after it came.
    target_bps: Option<u64>,
    captures: HashMap<String, Box<dyn CaptureControl>>,
    playbacks: HashMap<String, Box<dyn PlaybackSink>>,
    ws_out: Option<mpsc::Sender<Message>>,
    ws_in: Option<futures_util::stream::SplitStream<WsStream>>,
    connecting: Option<oneshot::Receiver<Result<WsStream, (ErrorCode, String)>>>,
    /// Per stream: the first pts of either kind, so that audio and video RTP times share one
    /// origin (a player can line them up without waiting for sender reports).
    rtp_base: HashMap<String, Duration>,
    /// When a keyframe was last asked for, per played stream.
    keyframe_asked: HashMap<String, Instant>,
    /// The local preview, while it runs.
    preview: Option<Box<dyn Send>>,
    /// The ICE-TCP stream, when the core fell back to it.
    tcp: Option<TcpLink>,
}

impl Runtime {
    async fn run(mut self) {
        let (frames_tx, mut frames_rx) = mpsc::channel::<EncodedFrame>(256);
        let mut buf = vec![0u8; 2048];
        let udp = self.udp.clone();
        let mut destroy: Option<oneshot::Sender<()>> = None;
        loop {
            let deadline = self.core.poll_timeout();
            tokio::select! {
                req = self.rx.recv() => match req {
                    Some(Request::Command(c)) => self.core.command(Instant::now(), c),
                    Some(Request::Preview(on)) => {
                        if let Some(p) = self.preview.take() {
                            self.media.retire(p);
                        }
                        self.pending_preview = None;
                        if on {
                            let generation = self.generation();
                            self.pending_preview = Some(generation);
                            self.media.start_preview(generation);
                        }
                    }
                    Some(Request::Destroy(done)) => {
                        self.logout_and_wait().await;
                        if let Some(room) = self.core.room_id().map(str::to_string) {
                            self.core.command(Instant::now(), Command::LogoutRoom { room_id: room });
                        }
                        destroy = Some(done);
                    }
                    None => break,
                },
                r = async {
                    match self.connecting.as_mut() {
                        Some(c) => c.await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.connecting = None;
                    match r {
                        Ok(Ok(ws)) => {
                            let (mut sink, stream) = ws.split();
                            let (tx, mut rx) = mpsc::channel::<Message>(256);
                            tokio::spawn(async move {
                                while let Some(m) = rx.recv().await {
                                    let close = matches!(m, Message::Close(_));
                                    if tokio::time::timeout(Duration::from_secs(10), sink.send(m)).await.map(|r| r.is_err()).unwrap_or(true) || close {
                                        break;
                                    }
                                }
                                let _ = sink.close().await;
                            });
                            self.ws_out = Some(tx);
                            self.ws_in = Some(stream);
                            self.core.handle_connected(Instant::now());
                        }
                        Ok(Err((code, reason))) => {
                            tracing::warn!(%reason, "cannot connect to the room service");
                            self.core.handle_connect_failed(Instant::now(), code, &reason);
                        }
                        Err(_) => self.core.handle_closed(Instant::now(), "connect task ended"),
                    }
                }
                msg = async {
                    match self.ws_in.as_mut() {
                        Some(s) => s.next().await,
                        None => std::future::pending().await,
                    }
                } => match msg {
                    Some(Ok(Message::Text(t))) => self.core.handle_text(Instant::now(), &t),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        self.ws_in = None;
                        self.ws_out = None;
                        self.core.handle_closed(Instant::now(), "the connection to the room service closed");
                    }
                    Some(Ok(_)) => {}
                },
                r = udp.recv_from(&mut buf) => {
                    if let Ok((n, source)) = r {
                        self.core.handle_udp(Instant::now(), source, &buf[..n]);
                    }
                }
                ev = async {
                    match self.tcp.as_mut() {
                        Some(l) => l.next().await,
                        None => std::future::pending().await,
                    }
                } => match ev {
                    Some(LinkEvent::Connected { local }) => {
                        self.core.handle_tcp_connected(Instant::now(), local);
                    }
                    Some(LinkEvent::Packet { source, data }) => {
                        self.core.handle_tcp(Instant::now(), source, &data);
                    }
                    Some(LinkEvent::Closed(reason)) => {
                        self.tcp = None;
                        self.core.handle_tcp_closed(Instant::now(), &reason);
                    }
                    None => {
                        self.tcp = None;
                        self.core.handle_tcp_closed(Instant::now(), "the ICE-TCP task ended");
                    }
                },
                Some(started) = self.started.recv() => self.media_started(started),
                f = frames_rx.recv() => {
                    if let Some(f) = f {
                        self.write_frame(f);
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.core.handle_timeout(Instant::now());
                }
            }
            self.drain(&frames_tx);
            if let Some(done) = destroy.take() {
                // Give the logout a moment to leave, then stop.
                if let Some(tx) = &self.ws_out {
                    let _ = tokio::time::timeout(
                        Duration::from_millis(500),
                        tx.send(Message::Close(None)),
                    )
                    .await;
                }
                for (_, c) in self.captures.drain() {
                    self.media.retire(Box::new(c));
                }
                for (_, p) in self.playbacks.drain() {
                    self.media.retire(Box::new(p));
                }
                if let Some(p) = self.preview.take() {
                    self.media.retire(p);
                }
                self.pending_captures.clear();
                self.pending_playbacks.clear();
                self.pending_preview = None;
                // Every pipeline stopped (and its device released) before destroy returns.
                let _ = self.media.flush().await;
                let _ = done.send(());
                break;
            }
        }
    }

    /// Logs out and waits (at most 2 s) for the room service to confirm, so that peers have
    /// been told before this process goes away.
    async fn logout_and_wait(&mut self) {
        let (Some(room_id), Some(tx), Some(rx)) = (
            self.core.room_id().map(str::to_string),
            self.ws_out.clone(),
            self.ws_in.as_mut(),
        ) else {
            return;
        };
        let logout = crate::protocol::ClientMessage::Logout { room_id };
        let Ok(text) = serde_json::to_string(&logout) else {
            return;
        };
        if tx.send(Message::Text(text.into())).await.is_err() {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = rx.next().await {
                if let Message::Text(t) = m
                    && t.contains("\"logoutResult\"")
                {
                    return;
                }
            }
        })
        .await;
    }

    fn write_frame(&mut self, f: EncodedFrame) {
        let base = *self.rtp_base.entry(f.stream_id.clone()).or_insert(f.pts);
        let rel = f.pts.saturating_sub(base);
        let ticks = (rel.as_nanos() * u128::from(f.kind.clock_rate()) / 1_000_000_000) as u64;
        let sent = self
            .core
            .write_frame(Instant::now(), &f.stream_id, f.kind, ticks, &f.data);
        if sent
            && let Ok(mut s) = self.status.lock()
            && let Some(p) = s.publishers.get_mut(&f.stream_id)
        {
            match f.kind {
                TrackKind::Video => p.video_frames_sent += 1,
                TrackKind::Audio => p.audio_frames_sent += 1,
            }
            p.bytes_sent += f.data.len() as u64;
        }
    }

    fn drain(&mut self, frames_tx: &mpsc::Sender<EncodedFrame>) {
        let transport = self.core.media_transport();
        if let Ok(mut s) = self.status.lock() {
            s.media_transport = transport;
        }
        while let Some(o) = self.core.poll_output() {
            match o {
                CoreOutput::Connect => {
                    let url = self.options.server_url.clone();
                    let host = self.host.clone();
                    let trust = self.trust.clone();
                    let (tx, rx) = oneshot::channel();
                    self.connecting = Some(rx);
                    tokio::spawn(async move {
                        // With wss://, the certificate is checked in the TLS handshake, before
                        // the WebSocket opens: a refused server never sees a login.
                        let connector = trust
                            .as_ref()
                            .map(|t| tokio_tungstenite::Connector::Rustls(t.config.clone()));
                        let r = tokio::time::timeout(
                            Duration::from_secs(10),
                            tokio_tungstenite::connect_async_tls_with_config(
                                url.as_str(),
                                None,
                                false,
                                connector,
                            ),
                        )
                        .await;
                        let r = match r {
                            Ok(Ok((ws, _))) => Ok(ws),
                            Ok(Err(e)) => Err(super::wss::describe_connect_error(
                                &url,
                                &host,
                                trust.as_ref().map(|t| &t.source),
                                &e,
                            )),
                            Err(_) => Err((
                                ErrorCode::ConnectionFailed,
                                format!("connecting to {url} timed out"),
                            )),
                        };
                        let _ = tx.send(r);
                    });
                }
                CoreOutput::Disconnect => {
                    if let Some(tx) = self.ws_out.take() {
                        let _ = tx.try_send(Message::Close(None));
                    }
                    self.ws_in = None;
                    self.connecting = None;
                }
                CoreOutput::Send(m) => {
                    if let (Some(tx), Ok(text)) = (&self.ws_out, serde_json::to_string(&m))
                        && tx.try_send(Message::Text(text.into())).is_err()
                    {
                        tracing::warn!("signalling queue full; dropping the connection");
                        self.ws_out = None;
                        self.ws_in = None;
                        self.core
                            .handle_closed(Instant::now(), "signalling queue overflow");
                    }
                }
                CoreOutput::Event(e) => {
                    self.update_status(&e);
                    let _ = self.events.send(e);
                }
                CoreOutput::Transmit {
                    transport: Transport::Udp,
                    destination,
                    contents,
                } => {
                    let _ = self.udp.try_send_to(&contents, destination);
                }
                CoreOutput::Transmit {
                    transport: Transport::Tcp,
                    contents,
                    ..
                } => {
                    if let Some(l) = &self.tcp {
                        l.send(&contents);
                    }
                }
                CoreOutput::TcpConnect { destination } => {
                    self.tcp = Some(TcpLink::connect(destination));
                }
                CoreOutput::TcpDisconnect => self.tcp = None,
                CoreOutput::Frame(f) => {
                    if let Ok(mut s) = self.status.lock()
                        && let Some(p) = s.players.get_mut(&f.stream_id)
                    {
                        match f.kind {
                            TrackKind::Video => p.video_frames_received += 1,
                            TrackKind::Audio => p.audio_frames_received += 1,
                        }
                    }
                    let wants_key = self
                        .playbacks
                        .get_mut(&f.stream_id)
                        .is_some_and(|p| p.push(&f));
                    if wants_key {
                        // Rate-limited: at most one request per stream per 500 ms.
                        let now = Instant::now();
                        let last = self.keyframe_asked.get(&f.stream_id).copied();
                        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_millis(500))
                        {
                            self.keyframe_asked.insert(f.stream_id.clone(), now);
                            self.core.request_keyframe(now, &f.stream_id);
                        }
                    }
                }
                CoreOutput::Capture { stream_id, on } => {
                    if let Some(c) = self.captures.remove(&stream_id) {
                        self.media.retire(Box::new(c));
                    }
                    self.pending_captures.remove(&stream_id);
                    if on {
                        self.rtp_base.remove(&stream_id);
                        let generation = self.generation();
                        self.media
                            .start_capture(&stream_id, generation, frames_tx.clone());
                        self.pending_captures.insert(stream_id, generation);
                    }
                }
                CoreOutput::Playback { stream_id, on } => {
                    if let Some(p) = self.playbacks.remove(&stream_id) {
                        self.media.retire(Box::new(p));
                    }
                    self.pending_playbacks.remove(&stream_id);
                    if on {
                        let generation = self.generation();
                        self.media.start_playback(&stream_id, generation);
                        self.pending_playbacks.insert(stream_id, generation);
                    }
                }
                CoreOutput::KeyframeRequest { stream_id } => {
                    if let Some(c) = self.captures.get_mut(&stream_id) {
                        c.request_keyframe();
                    }
                }
                CoreOutput::TargetBitrate { bps } => {
                    self.target_bps = Some(bps);
                    for c in self.captures.values_mut() {
                        c.set_target_bitrate(bps);
                    }
                    if let Ok(mut s) = self.status.lock() {
                        s.target_bitrate_bps = bps;
                    }
                }
            }
        }
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// A start finished on the media worker: keep it if it is still wanted, else retire it.
    fn media_started(&mut self, started: Started) {
        match started {
            Started::Capture {
                stream_id,
                generation,
                result,
            } => {
                if !take_pending(&mut self.pending_captures, &stream_id, generation) {
                    if let Ok(c) = result {
                        self.media.retire(Box::new(c));
                    }
                    return;
                }
                match result {
                    Ok(mut c) => {
                        if let Some(bps) = self.target_bps {
                            c.set_target_bitrate(bps);
                        }
                        self.captures.insert(stream_id, c);
                    }
                    Err(e) => {
                        tracing::error!(stream = %stream_id, error = %e, "cannot start capture")
                    }
                }
            }
            Started::Playback {
                stream_id,
                generation,
                result,
            } => {
                if !take_pending(&mut self.pending_playbacks, &stream_id, generation) {
                    if let Ok(p) = result {
                        self.media.retire(Box::new(p));
                    }
                    return;
                }
                match result {
                    Ok(p) => {
                        // Frames that came while it started were dropped: ask for a keyframe
                        // now rather than at the first delta frame the player refuses.
                        let now = Instant::now();
                        self.keyframe_asked.insert(stream_id.clone(), now);
                        self.core.request_keyframe(now, &stream_id);
                        self.playbacks.insert(stream_id, p);
                    }
                    Err(e) => {
                        tracing::error!(stream = %stream_id, error = %e, "cannot start playback")
                    }
                }
            }
            Started::Preview { generation, result } => {
                if self.pending_preview != Some(generation) {
                    if let Ok(p) = result {
                        self.media.retire(p);
                    }
                    return;
                }
                self.pending_preview = None;
                match result {
                    Ok(p) => self.preview = Some(p),
                    Err(e) => tracing::error!(error = %e, "cannot start the preview"),
                }
            }
        }
    }

    fn update_status(&mut self, e: &Event) {
        let Ok(mut s) = self.status.lock() else {
            return;
        };
        match e {
            Event::RoomStateUpdate {
                room_id,
                state,
                reason,
                error_code,
                ..
            } => {
                s.room_id = Some(room_id.clone());
                s.room_state = Some(*state);
                s.reason = Some(format!("{reason:?}"));
                s.error_code = *error_code;
            }
            Event::PublisherStateUpdate {
                stream_id, state, ..
            } => {
                if *state == PublisherState::NoPublish {
                    s.publishers.remove(stream_id);
                } else {
                    s.publishers
                        .entry(stream_id.clone())
                        .or_insert(PublisherStatus {
                            state: *state,
                            video_frames_sent: 0,
                            audio_frames_sent: 0,
                            bytes_sent: 0,
                        })
                        .state = *state;
                }
            }
            Event::PlayerStateUpdate {
                stream_id, state, ..
            } => {
                if *state == PlayerState::NoPlay {
                    s.players.remove(stream_id);
                } else {
                    let user_id = self
                        .core
                        .streams()
                        .find(|i| i.stream_id == *stream_id)
                        .map(|i| i.user_id.clone())
                        .unwrap_or_default();
                    s.players
                        .entry(stream_id.clone())
                        .or_insert(PlayerStatus {
                            state: *state,
                            user_id,
                            video_frames_received: 0,
                            audio_frames_received: 0,
                        })
                        .state = *state;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_stay_off_plain_ws_beyond_loopback() {
        assert!(check_url("ws://127.0.0.1:8080/ws", false).is_ok());
        assert!(check_url("ws://localhost:8080/ws", false).is_ok());
        assert!(check_url("ws://[::1]:8080/ws", false).is_ok());
        assert!(matches!(
            check_url("ws://192.0.2.7:8080/ws", false),
            Err(EngineError::Insecure { .. })
        ));
        assert!(check_url("ws://192.0.2.7:8080/ws", true).is_ok());
        assert_eq!(
            check_url("wss://room.example:443/ws", false).unwrap(),
            ("room.example".to_string(), true)
        );
        assert!(matches!(
            check_url("http://x/ws", false),
            Err(EngineError::BadUrl { .. })
        ));
        assert!(matches!(
            check_url("ws:///ws", false),
            Err(EngineError::BadUrl { .. })
        ));
    }
}

//! [`EngineCore`]: the engine's call and session logic, sans-IO (str0m's model). The adapter
//! feeds it commands, signalling frames, datagrams, encoded frames and the time, and drains
//! [`CoreOutput`]s. It owns the device's [`MediaSession`] (str0m is sans-IO too), so a whole
//! call — login, negotiation, media, reconnection — runs on simulated time in tests.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::events::{Event, PlayerState, PublisherState, RoomState, RoomStateReason, code};
use super::media_session::{MediaOutput, MediaSession, ReceivedFrame, TrackKind, TrackOp};
use crate::auth::appsign;
use crate::ice_tcp::Transport;
use crate::protocol::{
    ClientMessage, ErrorCode, Login, PROTOCOL_VERSION, ServerMessage, StreamInfo, UpdateType,
    UserInfo,
};

/// How the engine proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A token04 token (production).
    Token(String),
    /// The 64-hex-digit app sign (development only; answered as a challenge, never sent).
    AppSign(String),
}

/// The seed's engine profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineProfile {
    pub app_id: u32,
    pub user_id: String,
    pub user_name: String,
    pub credential: Credential,
    /// The seed's scenario (0 = general). Kept for API parity; it does not change behaviour yet.
    pub scenario: u32,
}

/// Timing of the engine's connection handling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// From connecting to `loginResult`.
    pub login_timeout: Duration,
    /// First reconnect delay; doubles per attempt (with ±20 % jitter) up to `reconnect_max_delay`.
    pub reconnect_base_delay: Duration,
    pub reconnect_max_delay: Duration,
    /// Give up (ReconnectFailed) after this long; `None` = never (an appliance).
    pub reconnect_limit: Option<Duration>,
    /// Media (ICE/DTLS) down this long while logged in counts as a lost connection.
    pub media_loss_timeout: Duration,
    /// Media not connected this long after an offer counts as a lost connection.
    pub media_connect_timeout: Duration,
    /// ICE-TCP fallback: media (UDP ICE checks) not connected this long after the first offer
    /// makes the engine connect a TCP stream to the SFU's passive TCP candidate and carry media
    /// over it (RFC 6544). `None` = never. Well under `media_connect_timeout`.
    pub tcp_fallback_after: Option<Duration>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            login_timeout: Duration::from_secs(10),
            reconnect_base_delay: Duration::from_millis(500),
            reconnect_max_delay: Duration::from_secs(8),
            reconnect_limit: None,
            media_loss_timeout: Duration::from_secs(5),
            media_connect_timeout: Duration::from_secs(15),
            tcp_fallback_after: Some(DEFAULT_TCP_FALLBACK_AFTER),
        }
    }
}

/// Default for [`EngineConfig::tcp_fallback_after`]: UDP ICE on a working path connects in well
/// under a second (one round trip per check, checks every 50 ms); 3 s leaves room for a slow
/// or lossy path before the engine decides UDP is blocked, and keeps the fallback call's
/// start-up short.
pub const DEFAULT_TCP_FALLBACK_AFTER: Duration = Duration::from_secs(3);

/// What the application asks of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    LoginRoom {
        room_id: String,
        /// Ask for RoomUserUpdate events (the seed's `isUserStatusNotify`).
        user_updates: bool,
        /// A token for this login, replacing the profile's.
        token: Option<String>,
    },
    LogoutRoom {
        room_id: String,
    },
    StartPublishing {
        stream_id: String,
        extra_info: String,
    },
    StopPublishing {
        stream_id: String,
    },
    StartPlaying {
        stream_id: String,
    },
    StopPlaying {
        stream_id: String,
    },
    /// With a token: use it; without: ask the room service for a fresh one.
    RenewToken {
        token: Option<String>,
    },
    /// The seed's `muteMicrophone`: stop sending audio (the stream stays published).
    MuteMicrophone(bool),
    /// The seed's `enableCamera(false)`: stop sending video (the stream stays published).
    EnableCamera(bool),
}

/// What the engine core asks its adapter to do.
#[derive(Debug)]
pub enum CoreOutput {
    /// Open the signalling connection; answer with `handle_connected` or `handle_closed`.
    Connect,
    /// Close the signalling connection (no `handle_closed` is needed for it).
    Disconnect,
    /// Send a signalling message.
    Send(ClientMessage),
    /// Tell the application.
    Event(Event),
    /// Send a media packet: a datagram from the media UDP socket, or (`Tcp`) a frame on the
    /// ICE-TCP stream (framed by the adapter, RFC 4571).
    Transmit {
        transport: Transport,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// UDP did not connect in time: open a TCP stream to the SFU's ICE-TCP candidate and answer
    /// with `handle_tcp_connected` or `handle_tcp_closed`.
    TcpConnect { destination: SocketAddr },
    /// Close the ICE-TCP stream (the media session it served is gone).
    TcpDisconnect,
    /// A frame of a played stream, for its decoder.
    Frame(ReceivedFrame),
    /// Start or stop capturing and encoding for a published stream.
    Capture { stream_id: String, on: bool },
    /// Start or stop the decoder and output of a played stream.
    Playback { stream_id: String, on: bool },
    /// Encode a keyframe for this published stream now.
    KeyframeRequest { stream_id: String },
    /// The network's estimate of what may be sent (bits per second), for the encoder.
    TargetBitrate { bps: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Down,
    Connecting { deadline: Instant },
    AwaitHello { deadline: Instant },
    LoggingIn { deadline: Instant },
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first login.
    Logining,
    LoggedIn,
    /// Lost after a login; `next` is when to try again.
    Reconnecting {
        attempt: u32,
        since: Instant,
        next: Option<Instant>,
    },
}

#[derive(Debug)]
struct Room {
    id: String,
    user_updates: bool,
    phase: Phase,
}

#[derive(Debug)]
struct Pub {
    state: PublisherState,
    extra_info: String,
    accepted: bool,
}

#[derive(Debug)]
struct Play {
    state: PlayerState,
    accepted: bool,
}

/// The ICE-TCP fallback path of the current media session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpPath {
    /// Not needed (yet).
    Idle,
    Connecting,
    Up,
    /// Connecting failed or the stream closed: no second try for this media session.
    Failed,
}

/// The core.
pub struct EngineCore {
    profile: EngineProfile,
    config: EngineConfig,
    media_addr: SocketAddr,
    token: Option<String>,
    conn: Conn,
    room: Option<Room>,
    heartbeat_interval: Duration,
    session_timeout: Duration,
    last_rx: Instant,
    next_heartbeat: Option<Instant>,
    publishers: BTreeMap<String, Pub>,
    players: BTreeMap<String, Play>,
    known_streams: BTreeMap<String, StreamInfo>,
    known_users: BTreeMap<String, UserInfo>,
    media: Option<MediaSession>,
    media_down_since: Option<Instant>,
    media_started: Option<Instant>,
    tcp: TcpPath,
    mic_muted: bool,
    camera_off: bool,
    out: VecDeque<CoreOutput>,
    rng: StdRng,
    now: Instant,
}

impl EngineCore {
    /// A core for `profile`; `media_addr` is the local address of the media UDP socket.
    pub fn new(
        now: Instant,
        profile: EngineProfile,
        config: EngineConfig,
        media_addr: SocketAddr,
        seed: u64,
    ) -> Self {
        let token = match &profile.credential {
            Credential::Token(t) => Some(t.clone()),
            Credential::AppSign(_) => None,
        };
        EngineCore {
            profile,
            config,
            media_addr,
            token,
            conn: Conn::Down,
            room: None,
            heartbeat_interval: Duration::from_secs(10),
            session_timeout: Duration::from_secs(30),
            last_rx: now,
            next_heartbeat: None,
            publishers: BTreeMap::new(),
            players: BTreeMap::new(),
            known_streams: BTreeMap::new(),
            known_users: BTreeMap::new(),
            media: None,
            media_down_since: None,
            media_started: None,
            tcp: TcpPath::Idle,
            mic_muted: false,
            camera_off: false,
            out: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
            now,
        }
    }

    /// The token in use (it changes when the room service renews it).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The room this engine is in (or logging into), if any.
    pub fn room_id(&self) -> Option<&str> {
        self.room.as_ref().map(|r| r.id.as_str())
    }

    /// The room's state as the seed reports it.
    pub fn room_state(&self) -> RoomState {
        match self.room.as_ref().map(|r| r.phase) {
            None => RoomState::Disconnected,
            Some(Phase::LoggedIn) => RoomState::Connected,
            Some(_) => RoomState::Connecting,
        }
    }

    /// Publisher states.
    pub fn publishers(&self) -> impl Iterator<Item = (&str, PublisherState)> {
        self.publishers.iter().map(|(k, v)| (k.as_str(), v.state))
    }

    /// Player states.
    pub fn players(&self) -> impl Iterator<Item = (&str, PlayerState)> {
        self.players.iter().map(|(k, v)| (k.as_str(), v.state))
    }

    /// The streams in the room as last told.
    pub fn streams(&self) -> impl Iterator<Item = &StreamInfo> {
        self.known_streams.values()
    }

    /// The other users in the room as last told (when user updates were asked for).
    pub fn users(&self) -> impl Iterator<Item = &UserInfo> {
        self.known_users.values()
    }

    fn emit(&mut self, e: Event) {
        self.out.push_back(CoreOutput::Event(e));
    }

    fn room_event(
        &mut self,
        state: RoomState,
        reason: RoomStateReason,
        err: Option<ErrorCode>,
        extended: &str,
    ) {
        let room_id = self.room.as_ref().map(|r| r.id.clone()).unwrap_or_default();
        self.emit(Event::RoomStateUpdate {
            room_id,
            state,
            reason,
            error_code: code(err),
            extended_data: if extended.is_empty() {
                "{}".into()
            } else {
                extended.into()
            },
        });
    }

    fn set_pub(&mut self, stream_id: &str, state: PublisherState, err: Option<ErrorCode>) {
        let Some(p) = self.publishers.get_mut(stream_id) else {
            return;
        };
        if p.state == state && err.is_none() {
            return;
        }
        p.state = state;
        self.emit(Event::PublisherStateUpdate {
            stream_id: stream_id.to_string(),
            state,
            error_code: code(err),
        });
    }

    fn set_play(&mut self, stream_id: &str, state: PlayerState, err: Option<ErrorCode>) {
        let Some(p) = self.players.get_mut(stream_id) else {
            return;
        };
        if p.state == state && err.is_none() {
            return;
        }
        p.state = state;
        self.emit(Event::PlayerStateUpdate {
            stream_id: stream_id.to_string(),
            state,
            error_code: code(err),
        });
    }

    // ----- commands -----

    /// An application request.
    pub fn command(&mut self, now: Instant, cmd: Command) {
        self.now = now;
        match cmd {
            Command::LoginRoom {
                room_id,
                user_updates,
                token,
            } => self.login_room(now, room_id, user_updates, token),
            Command::LogoutRoom { room_id } => self.logout_room(&room_id),
            Command::StartPublishing {
                stream_id,
                extra_info,
            } => self.start_publishing(now, stream_id, extra_info),
            Command::StopPublishing { stream_id } => self.stop_publishing(&stream_id),
            Command::StartPlaying { stream_id } => self.start_playing(now, stream_id),
            Command::StopPlaying { stream_id } => self.stop_playing(&stream_id),
            Command::RenewToken { token } => {
                if let Some(t) = &token {
                    self.token = Some(t.clone());
                }
                if self.conn == Conn::Up {
                    self.send(ClientMessage::RenewToken { token });
                }
            }
            Command::MuteMicrophone(on) => self.mic_muted = on,
            Command::EnableCamera(on) => self.camera_off = !on,
        }
        self.after(now);
    }

    fn login_room(
        &mut self,
        now: Instant,
        room_id: String,
        user_updates: bool,
        token: Option<String>,
    ) {
        if let Some(r) = &self.room {
            // One room at a time: logging into the same room again is a no-op.
            let err = if r.id == room_id {
                None
            } else {
                Some(ErrorCode::AlreadyLoggedIn)
            };
            if let Some(err) = err {
                self.emit(Event::RoomStateUpdate {
                    room_id,
                    state: RoomState::Disconnected,
                    reason: RoomStateReason::LoginFailed,
                    error_code: err.code(),
                    extended_data: "{\"message\":\"log out of the current room first\"}".into(),
                });
            }
            return;
        }
        if token.is_some() {
            self.token = token;
        }
        self.room = Some(Room {
            id: room_id,
            user_updates,
            phase: Phase::Logining,
        });
        self.room_event(RoomState::Connecting, RoomStateReason::Logining, None, "");
        self.connect(now);
    }

    fn connect(&mut self, now: Instant) {
        self.conn = Conn::Connecting {
            deadline: now + self.config.login_timeout,
        };
        self.out.push_back(CoreOutput::Connect);
    }

    fn logout_room(&mut self, room_id: &str) {
        let Some(r) = &self.room else {
            return;
        };
        if r.id != room_id {
            self.emit(Event::RoomStateUpdate {
                room_id: room_id.to_string(),
                state: self.room_state(),
                reason: RoomStateReason::LogoutFailed,
                error_code: ErrorCode::WrongRoom.code(),
                extended_data: "{}".into(),
            });
            return;
        }
        if self.conn == Conn::Up {
            self.send(ClientMessage::Logout {
                room_id: room_id.to_string(),
            });
        }
        self.drop_all(None);
        self.room_event(RoomState::Disconnected, RoomStateReason::Logout, None, "");
        self.room = None;
        self.known_streams.clear();
        self.known_users.clear();
        self.close_connection();
    }

    /// Ends every publisher and player (NoPublish/NoPlay with `err`) and stops their media.
    fn drop_all(&mut self, err: Option<ErrorCode>) {
        let pubs: Vec<String> = self.publishers.keys().cloned().collect();
        for s in pubs {
            self.set_pub(&s, PublisherState::NoPublish, err);
            self.out.push_back(CoreOutput::Capture {
                stream_id: s,
                on: false,
            });
        }
        self.publishers.clear();
        let plays: Vec<String> = self.players.keys().cloned().collect();
        for s in plays {
            self.set_play(&s, PlayerState::NoPlay, err);
            self.out.push_back(CoreOutput::Playback {
                stream_id: s,
                on: false,
            });
        }
        self.players.clear();
        self.drop_media();
    }

    fn close_connection(&mut self) {
        if self.conn != Conn::Down {
            self.conn = Conn::Down;
            self.out.push_back(CoreOutput::Disconnect);
        }
        self.next_heartbeat = None;
        self.drop_media();
        self.media_down_since = None;
        self.media_started = None;
    }

    fn start_publishing(&mut self, now: Instant, stream_id: String, extra_info: String) {
        if self.room.is_none() {
            self.emit(Event::PublisherStateUpdate {
                stream_id,
                state: PublisherState::NoPublish,
                error_code: ErrorCode::NotLoggedIn.code(),
            });
            return;
        }
        if self.publishers.contains_key(&stream_id) {
            return;
        }
        if let Err(c) = crate::protocol::ids::validate_stream_id(&stream_id) {
            self.emit(Event::PublisherStateUpdate {
                stream_id,
                state: PublisherState::NoPublish,
                error_code: c.code(),
            });
            return;
        }
        self.publishers.insert(
            stream_id.clone(),
            Pub {
                state: PublisherState::NoPublish,
                extra_info,
                accepted: false,
            },
        );
        self.set_pub(&stream_id, PublisherState::PublishRequesting, None);
        self.out.push_back(CoreOutput::Capture {
            stream_id: stream_id.clone(),
            on: true,
        });
        if self.conn == Conn::Up {
            self.negotiate(now, TrackOp::Publish(stream_id));
        }
    }

    fn stop_publishing(&mut self, stream_id: &str) {
        if self.publishers.remove(stream_id).is_none() {
            return;
        }
        self.emit(Event::PublisherStateUpdate {
            stream_id: stream_id.to_string(),
            state: PublisherState::NoPublish,
            error_code: 0,
        });
        self.out.push_back(CoreOutput::Capture {
            stream_id: stream_id.to_string(),
            on: false,
        });
        if let Some(m) = &mut self.media {
            m.stop_publish(stream_id);
        }
        if self.conn == Conn::Up {
            self.send(ClientMessage::StopPublish {
                stream_id: stream_id.to_string(),
            });
        }
    }

    fn start_playing(&mut self, now: Instant, stream_id: String) {
        if self.room.is_none() {
            self.emit(Event::PlayerStateUpdate {
                stream_id,
                state: PlayerState::NoPlay,
                error_code: ErrorCode::NotLoggedIn.code(),
            });
            return;
        }
        if self.players.contains_key(&stream_id) {
            return;
        }
        if let Err(c) = crate::protocol::ids::validate_stream_id(&stream_id) {
            self.emit(Event::PlayerStateUpdate {
                stream_id,
                state: PlayerState::NoPlay,
                error_code: c.code(),
            });
            return;
        }
        self.players.insert(
            stream_id.clone(),
            Play {
                state: PlayerState::NoPlay,
                accepted: false,
            },
        );
        self.set_play(&stream_id, PlayerState::PlayRequesting, None);
        self.out.push_back(CoreOutput::Playback {
            stream_id: stream_id.clone(),
            on: true,
        });
        if self.conn == Conn::Up {
            self.negotiate(now, TrackOp::Play(stream_id));
        }
    }

    fn stop_playing(&mut self, stream_id: &str) {
        if self.players.remove(stream_id).is_none() {
            return;
        }
        self.emit(Event::PlayerStateUpdate {
            stream_id: stream_id.to_string(),
            state: PlayerState::NoPlay,
            error_code: 0,
        });
        self.out.push_back(CoreOutput::Playback {
            stream_id: stream_id.to_string(),
            on: false,
        });
        if let Some(m) = &mut self.media {
            m.stop_play(stream_id);
        }
        if self.conn == Conn::Up {
            self.send(ClientMessage::StopPlay {
                stream_id: stream_id.to_string(),
            });
        }
    }

    /// Adds a track change to the media session and sends what it produced.
    fn negotiate(&mut self, now: Instant, op: TrackOp) {
        let media = self
            .media
            .get_or_insert_with(|| MediaSession::new(now, self.media_addr));
        if self.media_started.is_none() {
            self.media_started = Some(now);
        }
        if let Some((ops, offer)) = media.request(op) {
            self.send_offer(ops, offer);
        }
    }

    fn send_offer(&mut self, ops: Vec<(TrackOp, crate::protocol::TrackMids)>, offer: String) {
        for (op, mids) in ops {
            match op {
                TrackOp::Publish(stream_id) => {
                    let extra_info = self
                        .publishers
                        .get(&stream_id)
                        .map(|p| p.extra_info.clone())
                        .unwrap_or_default();
                    self.send(ClientMessage::Publish {
                        stream_id,
                        extra_info,
                        mids,
                    });
                }
                TrackOp::Play(stream_id) => self.send(ClientMessage::Play { stream_id, mids }),
            }
        }
        self.send(ClientMessage::Offer { sdp: offer });
    }

    fn send(&mut self, m: ClientMessage) {
        self.out.push_back(CoreOutput::Send(m));
    }

    // ----- connection events -----

    /// The signalling connection is open.
    pub fn handle_connected(&mut self, now: Instant) {
        self.now = now;
        if let Conn::Connecting { deadline } = self.conn {
            self.conn = Conn::AwaitHello { deadline };
            self.last_rx = now;
        }
        self.after(now);
    }

    /// The signalling connection could not be opened, or closed. `reason` is for people.
    pub fn handle_closed(&mut self, now: Instant, reason: &str) {
        self.now = now;
        if self.conn == Conn::Down {
            return;
        }
        self.conn = Conn::Down;
        self.lost(now, ErrorCode::ConnectionFailed, reason);
        self.after(now);
    }

    /// The connection is gone (closed, timed out, broken): retry or give up.
    fn lost(&mut self, now: Instant, err: ErrorCode, reason: &str) {
        self.close_connection();
        let Some(room) = &mut self.room else {
            return;
        };
        let extended = serde_json::json!({ "message": reason }).to_string();
        match room.phase {
            Phase::Logining => {
                self.drop_all(Some(err));
                self.room_event(
                    RoomState::Disconnected,
                    RoomStateReason::LoginFailed,
                    Some(err),
                    &extended,
                );
                self.room = None;
            }
            Phase::LoggedIn => {
                room.phase = Phase::Reconnecting {
                    attempt: 0,
                    since: now,
                    next: None,
                };
                self.room_event(
                    RoomState::Connecting,
                    RoomStateReason::Reconnecting,
                    Some(err),
                    &extended,
                );
                let pubs: Vec<String> = self.publishers.keys().cloned().collect();
                for s in pubs {
                    if let Some(p) = self.publishers.get_mut(&s) {
                        p.accepted = false;
                    }
                    self.set_pub(&s, PublisherState::PublishRequesting, Some(err));
                }
                let plays: Vec<String> = self.players.keys().cloned().collect();
                for s in plays {
                    if let Some(p) = self.players.get_mut(&s) {
                        p.accepted = false;
                    }
                    self.set_play(&s, PlayerState::PlayRequesting, Some(err));
                }
                self.schedule_retry(now);
            }
            Phase::Reconnecting { .. } => self.schedule_retry(now),
        }
    }

    fn schedule_retry(&mut self, now: Instant) {
        let cfg = self.config;
        let Some(room) = &mut self.room else {
            return;
        };
        let Phase::Reconnecting { attempt, since, .. } = room.phase else {
            return;
        };
        if let Some(limit) = cfg.reconnect_limit
            && now.saturating_duration_since(since) >= limit
        {
            self.drop_all(Some(ErrorCode::ReconnectFailed));
            self.room_event(
                RoomState::Disconnected,
                RoomStateReason::ReconnectFailed,
                Some(ErrorCode::ReconnectFailed),
                "",
            );
            self.room = None;
            self.known_streams.clear();
            self.known_users.clear();
            return;
        }
        let base = cfg.reconnect_base_delay.as_secs_f64() * 2f64.powi(attempt.min(16) as i32);
        let delay = base.min(cfg.reconnect_max_delay.as_secs_f64()) * self.rng.gen_range(0.8..1.2);
        room.phase = Phase::Reconnecting {
            attempt: attempt.saturating_add(1),
            since,
            next: Some(now + Duration::from_secs_f64(delay)),
        };
    }

    /// One text frame from the room service.
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        self.now = now;
        self.last_rx = now;
        match serde_json::from_str::<ServerMessage>(text) {
            Ok(m) => self.handle_message(now, m),
            Err(e) => {
                // A type we do not know is from a newer server: ignore it. Anything else is
                // not this protocol.
                let known = serde_json::from_str::<serde_json::Value>(text)
                    .ok()
                    .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string));
                if let Some(t) = known
                    && !SERVER_TYPES.contains(&t.as_str())
                {
                    tracing::debug!(kind = %t, "ignoring unknown server message type");
                } else {
                    tracing::warn!(error = %e, "server sent a message that breaks the protocol");
                    self.lost(
                        now,
                        ErrorCode::ProtocolViolation,
                        "the server broke the protocol",
                    );
                }
            }
        }
        self.after(now);
    }

    fn handle_message(&mut self, now: Instant, m: ServerMessage) {
        match m {
            ServerMessage::Hello {
                version,
                nonce,
                heartbeat_interval_ms,
                session_timeout_ms,
            } => {
                let Conn::AwaitHello { deadline } = self.conn else {
                    return;
                };
                if version != PROTOCOL_VERSION {
                    self.lost(
                        now,
                        ErrorCode::UnsupportedVersion,
                        "the server speaks another protocol version",
                    );
                    return;
                }
                self.heartbeat_interval =
                    Duration::from_millis(heartbeat_interval_ms.clamp(500, 600_000));
                self.session_timeout =
                    Duration::from_millis(session_timeout_ms.clamp(1_000, 3_600_000));
                let Some(room) = &self.room else {
                    self.close_connection();
                    return;
                };
                let (token, app_sign_proof) = match &self.profile.credential {
                    Credential::AppSign(sign) => {
                        match appsign::proof(
                            sign,
                            &nonce,
                            self.profile.app_id,
                            &room.id,
                            &self.profile.user_id,
                        ) {
                            Ok(p) => (None, Some(p)),
                            Err(_) => (None, None),
                        }
                    }
                    Credential::Token(_) => (self.token.clone(), None),
                };
                let login = Login {
                    version: PROTOCOL_VERSION,
                    app_id: self.profile.app_id,
                    room_id: room.id.clone(),
                    user_id: self.profile.user_id.clone(),
                    user_name: self.profile.user_name.clone(),
                    token,
                    app_sign_proof,
                    user_updates: room.user_updates,
                };
                self.send(ClientMessage::Login(login));
                self.conn = Conn::LoggingIn { deadline };
            }
            ServerMessage::LoginResult { users, streams, .. } => {
                self.logged_in(now, users, streams)
            }
            ServerMessage::Error {
                code,
                message,
                request,
                stream_id,
            } => self.server_error(
                now,
                code,
                &message,
                request.as_deref(),
                stream_id.as_deref(),
            ),
            ServerMessage::Kicked { code, reason } => {
                match code {
                    // The server going away or losing us is a network event: come back.
                    ErrorCode::ServerShuttingDown
                    | ErrorCode::HeartbeatTimeout
                    | ErrorCode::SlowConsumer => self.lost(now, code, &reason),
                    _ => {
                        self.drop_all(Some(code));
                        let extended = serde_json::json!({ "message": reason }).to_string();
                        self.room_event(
                            RoomState::Disconnected,
                            RoomStateReason::KickOut,
                            Some(code),
                            &extended,
                        );
                        self.room = None;
                        self.known_streams.clear();
                        self.known_users.clear();
                        self.close_connection();
                    }
                }
            }
            ServerMessage::PublishResult { stream_id } => {
                if let Some(p) = self.publishers.get_mut(&stream_id) {
                    p.accepted = true;
                }
                self.update_media_states();
            }
            ServerMessage::PlayResult { stream_id } => {
                if let Some(p) = self.players.get_mut(&stream_id) {
                    p.accepted = true;
                }
                self.update_media_states();
            }
            ServerMessage::PlayStopped { stream_id, code } => {
                if code.is_some() && self.players.remove(&stream_id).is_some() {
                    self.emit(Event::PlayerStateUpdate {
                        stream_id: stream_id.clone(),
                        state: PlayerState::NoPlay,
                        error_code: super::events::code(code),
                    });
                    if let Some(m) = &mut self.media {
                        m.stop_play(&stream_id);
                    }
                    self.out.push_back(CoreOutput::Playback {
                        stream_id,
                        on: false,
                    });
                }
            }
            ServerMessage::StreamUpdate {
                room_id,
                update_type,
                streams,
            } => {
                for s in &streams {
                    match update_type {
                        UpdateType::Add => {
                            self.known_streams.insert(s.stream_id.clone(), s.clone());
                        }
                        UpdateType::Delete => {
                            self.known_streams.remove(&s.stream_id);
                        }
                    }
                }
                self.emit(Event::RoomStreamUpdate {
                    room_id,
                    update_type,
                    streams,
                });
            }
            ServerMessage::UserUpdate {
                room_id,
                update_type,
                users,
            } => {
                for u in &users {
                    match update_type {
                        UpdateType::Add => {
                            self.known_users.insert(u.user_id.clone(), u.clone());
                        }
                        UpdateType::Delete => {
                            self.known_users.remove(&u.user_id);
                        }
                    }
                }
                self.emit(Event::RoomUserUpdate {
                    room_id,
                    update_type,
                    users,
                });
            }
            ServerMessage::TokenWillExpire { remaining_secs } => {
                let room_id = self.room_id().unwrap_or_default().to_string();
                self.emit(Event::TokenWillExpire {
                    room_id,
                    remaining_secs,
                });
            }
            ServerMessage::TokenRenewed { token, .. } => {
                if let Some(t) = token {
                    self.token = Some(t);
                }
            }
            ServerMessage::Answer { sdp } => {
                let Some(media) = &mut self.media else {
                    return;
                };
                match media.accept_answer(now, &sdp) {
                    Ok(Some((ops, offer))) => self.send_offer(ops, offer),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "SDP answer refused");
                        self.lost(now, ErrorCode::InvalidSdp, &e);
                    }
                }
            }
            ServerMessage::Candidate { candidate, .. } => {
                if let Some(m) = &mut self.media {
                    m.add_remote_candidate(now, &candidate);
                }
            }
            ServerMessage::HeartbeatAck { .. }
            | ServerMessage::LogoutResult { .. }
            | ServerMessage::StopPublishResult { .. } => {}
        }
    }

    fn logged_in(&mut self, now: Instant, users: Vec<UserInfo>, streams: Vec<StreamInfo>) {
        let Some(room) = &mut self.room else {
            return;
        };
        if !matches!(self.conn, Conn::LoggingIn { .. }) {
            return;
        }
        self.conn = Conn::Up;
        self.next_heartbeat = Some(now + self.heartbeat_interval);
        let reason = match room.phase {
            Phase::Logining => RoomStateReason::Logined,
            _ => RoomStateReason::Reconnected,
        };
        room.phase = Phase::LoggedIn;
        let room_id = room.id.clone();
        let user_updates = room.user_updates;
        self.room_event(RoomState::Connected, reason, None, "");
        // Tell what changed since we last knew (everything, on a first login).
        let new_streams: BTreeMap<String, StreamInfo> = streams
            .into_iter()
            .map(|s| (s.stream_id.clone(), s))
            .collect();
        let gone: Vec<StreamInfo> = self
            .known_streams
            .values()
            .filter(|s| !new_streams.contains_key(&s.stream_id))
            .cloned()
            .collect();
        let added: Vec<StreamInfo> = new_streams
            .values()
            .filter(|s| !self.known_streams.contains_key(&s.stream_id))
            .cloned()
            .collect();
        self.known_streams = new_streams;
        if user_updates {
            let new_users: BTreeMap<String, UserInfo> =
                users.into_iter().map(|u| (u.user_id.clone(), u)).collect();
            let left: Vec<UserInfo> = self
                .known_users
                .values()
                .filter(|u| !new_users.contains_key(&u.user_id))
                .cloned()
                .collect();
            let came: Vec<UserInfo> = new_users
                .values()
                .filter(|u| !self.known_users.contains_key(&u.user_id))
                .cloned()
                .collect();
            self.known_users = new_users;
            if !left.is_empty() {
                self.emit(Event::RoomUserUpdate {
                    room_id: room_id.clone(),
                    update_type: UpdateType::Delete,
                    users: left,
                });
            }
            if !came.is_empty() {
                self.emit(Event::RoomUserUpdate {
                    room_id: room_id.clone(),
                    update_type: UpdateType::Add,
                    users: came,
                });
            }
        }
        if !gone.is_empty() {
            self.emit(Event::RoomStreamUpdate {
                room_id: room_id.clone(),
                update_type: UpdateType::Delete,
                streams: gone,
            });
        }
        if !added.is_empty() {
            self.emit(Event::RoomStreamUpdate {
                room_id,
                update_type: UpdateType::Add,
                streams: added,
            });
        }
        // A new signalling session has a new WebRTC session: publish and play again.
        self.drop_media();
        self.media_started = None;
        self.media_down_since = None;
        let pubs: Vec<String> = self.publishers.keys().cloned().collect();
        for s in pubs {
            self.negotiate(now, TrackOp::Publish(s));
        }
        let plays: Vec<String> = self.players.keys().cloned().collect();
        for s in plays {
            self.negotiate(now, TrackOp::Play(s));
        }
    }

    fn server_error(
        &mut self,
        now: Instant,
        code: ErrorCode,
        message: &str,
        request: Option<&str>,
        stream_id: Option<&str>,
    ) {
        match request {
            Some("login") => {
                let extended = serde_json::json!({ "message": message }).to_string();
                self.drop_all(Some(code));
                self.room_event(
                    RoomState::Disconnected,
                    RoomStateReason::LoginFailed,
                    Some(code),
                    &extended,
                );
                self.room = None;
                self.close_connection();
            }
            Some("publish") => {
                if let Some(s) = stream_id
                    && self.publishers.contains_key(s)
                {
                    self.set_pub(s, PublisherState::NoPublish, Some(code));
                    self.publishers.remove(s);
                    if let Some(m) = &mut self.media {
                        m.stop_publish(s);
                    }
                    self.out.push_back(CoreOutput::Capture {
                        stream_id: s.to_string(),
                        on: false,
                    });
                }
            }
            Some("play") => {
                if let Some(s) = stream_id
                    && self.players.contains_key(s)
                {
                    self.set_play(s, PlayerState::NoPlay, Some(code));
                    self.players.remove(s);
                    if let Some(m) = &mut self.media {
                        m.stop_play(s);
                    }
                    self.out.push_back(CoreOutput::Playback {
                        stream_id: s.to_string(),
                        on: false,
                    });
                }
            }
            Some("offer") | Some("candidate") => {
                tracing::warn!(%code, message, "media negotiation failed");
                self.lost(now, code, message);
            }
            _ => tracing::warn!(%code, message, ?request, "server error"),
        }
    }

    fn update_media_states(&mut self) {
        let connected = self.media.as_ref().is_some_and(MediaSession::is_connected);
        if !connected {
            return;
        }
        let ready: Vec<String> = self
            .publishers
            .iter()
            .filter(|(_, p)| p.accepted && p.state != PublisherState::Publishing)
            .map(|(k, _)| k.clone())
            .collect();
        for s in ready {
            self.set_pub(&s, PublisherState::Publishing, None);
        }
        let ready: Vec<String> = self
            .players
            .iter()
            .filter(|(_, p)| p.accepted && p.state != PlayerState::Playing)
            .map(|(k, _)| k.clone())
            .collect();
        for s in ready {
            self.set_play(&s, PlayerState::Playing, None);
        }
    }

    // ----- media -----

    /// A datagram on the media socket.
    pub fn handle_udp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.now = now;
        if let Some(m) = &mut self.media {
            m.handle_receive(now, source, data);
        }
        self.after(now);
    }

    /// One deframed packet from the ICE-TCP stream.
    pub fn handle_tcp(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.now = now;
        if let Some(m) = &mut self.media {
            m.handle_receive_on(now, Transport::Tcp, source, data);
        }
        self.after(now);
    }

    /// The ICE-TCP stream asked for by `TcpConnect` is connected from `local`.
    pub fn handle_tcp_connected(&mut self, now: Instant, local: SocketAddr) {
        self.now = now;
        match (&mut self.media, self.tcp) {
            (Some(m), TcpPath::Connecting) => {
                self.tcp = TcpPath::Up;
                m.add_tcp_path(now, local);
            }
            // The media session it was for is gone.
            _ => self.out.push_back(CoreOutput::TcpDisconnect),
        }
        self.after(now);
    }

    /// The ICE-TCP stream could not be opened, or closed.
    pub fn handle_tcp_closed(&mut self, now: Instant, reason: &str) {
        self.now = now;
        if matches!(self.tcp, TcpPath::Connecting | TcpPath::Up) {
            tracing::info!(reason, "the ICE-TCP stream closed");
            self.tcp = TcpPath::Failed;
        }
        self.after(now);
    }

    /// The transport the media session's packets go over, once connected.
    pub fn media_transport(&self) -> Option<Transport> {
        self.media
            .as_ref()
            .filter(|m| m.is_connected())
            .and_then(MediaSession::transport)
    }

    /// Forgets the media session and its ICE-TCP stream.
    fn drop_media(&mut self) {
        self.media = None;
        if matches!(self.tcp, TcpPath::Connecting | TcpPath::Up) {
            self.out.push_back(CoreOutput::TcpDisconnect);
        }
        self.tcp = TcpPath::Idle;
    }

    /// When the ICE-TCP fallback is due, while it may still happen.
    fn tcp_fallback_due(&self) -> Option<Instant> {
        let after = self.config.tcp_fallback_after?;
        let m = self.media.as_ref()?;
        if self.tcp != TcpPath::Idle || m.is_connected() || m.remote_tcp_candidates().is_empty() {
            return None;
        }
        Some(self.media_started? + after)
    }

    /// An encoded frame of a published stream (`rtp_time` in 90 kHz video / 48 kHz audio ticks).
    pub fn write_frame(
        &mut self,
        now: Instant,
        stream_id: &str,
        kind: TrackKind,
        rtp_time: u64,
        data: &[u8],
    ) -> bool {
        self.now = now;
        let muted = match kind {
            TrackKind::Audio => self.mic_muted,
            TrackKind::Video => self.camera_off,
        };
        if muted {
            return false;
        }
        let ok = match (&mut self.media, self.publishers.get(stream_id)) {
            (Some(m), Some(p)) if p.state == PublisherState::Publishing => {
                m.write_frame(now, stream_id, kind, rtp_time, data)
            }
            _ => false,
        };
        self.after(now);
        ok
    }

    /// Ask the publisher of a played stream for a keyframe (after decode errors).
    pub fn request_keyframe(&mut self, now: Instant, stream_id: &str) {
        if let Some(m) = &mut self.media {
            m.request_keyframe(stream_id);
        }
        self.after(now);
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.conn {
            Conn::Connecting { deadline }
            | Conn::AwaitHello { deadline }
            | Conn::LoggingIn { deadline }
                if now >= deadline =>
            {
                self.lost(
                    now,
                    ErrorCode::ServerTimeout,
                    "the server did not answer in time",
                );
            }
            Conn::Up => {
                if now.saturating_duration_since(self.last_rx) > self.session_timeout {
                    self.lost(now, ErrorCode::ServerTimeout, "the server went silent");
                } else if self.next_heartbeat.is_some_and(|t| now >= t) {
                    self.send(ClientMessage::Heartbeat {});
                    self.next_heartbeat = Some(now + self.heartbeat_interval);
                }
            }
            _ => {}
        }
        if let Some(Room {
            phase:
                Phase::Reconnecting {
                    next: Some(t),
                    attempt,
                    since,
                },
            ..
        }) = self.room.as_mut().map(|r| &mut *r)
            && now >= *t
            && self.conn == Conn::Down
        {
            let (attempt, since) = (*attempt, *since);
            if let Some(r) = &mut self.room {
                r.phase = Phase::Reconnecting {
                    attempt,
                    since,
                    next: None,
                };
            }
            self.connect(now);
        }
        if let Some(m) = &mut self.media {
            m.handle_timeout(now);
        }
        self.after(now);
    }

    /// Drains the media session and checks its health after any input.
    fn after(&mut self, now: Instant) {
        let mut connected_changed = false;
        if let Some(m) = &mut self.media {
            while let Some(o) = m.poll_output() {
                match o {
                    MediaOutput::Transmit {
                        transport,
                        destination,
                        contents,
                    } => self.out.push_back(CoreOutput::Transmit {
                        transport,
                        destination,
                        contents,
                    }),
                    MediaOutput::Frame(f) => self.out.push_back(CoreOutput::Frame(f)),
                    MediaOutput::KeyframeRequest { stream_id } => self
                        .out
                        .push_back(CoreOutput::KeyframeRequest { stream_id }),
                    MediaOutput::TargetBitrate { bps } => {
                        self.out.push_back(CoreOutput::TargetBitrate { bps })
                    }
                    MediaOutput::Connected(up) => {
                        connected_changed = true;
                        self.media_down_since = if up { None } else { Some(now) };
                    }
                }
            }
        }
        if connected_changed {
            self.update_media_states();
        }
        if self.conn != Conn::Up {
            return;
        }
        if self.tcp_fallback_due().is_some_and(|t| now >= t)
            && let Some(&destination) = self
                .media
                .as_ref()
                .and_then(|m| m.remote_tcp_candidates().first())
        {
            tracing::info!(%destination, "UDP media did not connect in time; trying ICE-TCP");
            self.tcp = TcpPath::Connecting;
            self.out.push_back(CoreOutput::TcpConnect { destination });
        }
        let failed = self.media.as_ref().is_some_and(MediaSession::is_failed);
        let down_too_long = self
            .media_down_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.config.media_loss_timeout);
        let never_up = self.media.as_ref().is_some_and(|m| !m.is_connected())
            && self.media_down_since.is_none()
            && self.media_started.is_some_and(|t| {
                now.saturating_duration_since(t) >= self.config.media_connect_timeout
            });
        if failed || down_too_long || never_up {
            self.lost(
                now,
                ErrorCode::MediaSessionFailed,
                "the media connection was lost",
            );
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Instant {
        let mut t = self.now + Duration::from_secs(1);
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x
                && x < t
            {
                t = x;
            }
        };
        consider(self.next_heartbeat);
        match self.conn {
            Conn::Connecting { deadline }
            | Conn::AwaitHello { deadline }
            | Conn::LoggingIn { deadline } => consider(Some(deadline)),
            _ => {}
        }
        if let Some(Room {
            phase: Phase::Reconnecting { next, .. },
            ..
        }) = &self.room
        {
            consider(*next);
        }
        consider(self.media.as_ref().and_then(MediaSession::poll_timeout));
        consider(self.tcp_fallback_due());
        t
    }
}

/// The server message types this build knows.
const SERVER_TYPES: &[&str] = &[
    "hello",
    "loginResult",
    "logoutResult",
    "heartbeatAck",
    "userUpdate",
    "streamUpdate",
    "publishResult",
    "stopPublishResult",
    "playResult",
    "playStopped",
    "tokenWillExpire",
    "tokenRenewed",
    "kicked",
    "error",
    "answer",
    "candidate",
];

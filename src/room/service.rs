//! [`RoomService`]: the room logic as a sans-IO state machine. The adapter feeds it connection
//! events and text frames stamped with the time, and drains [`RoomOutput`]s: messages to send,
//! connections to close, and commands for the media plane.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::config::{AppConfig, RoomConfig};
use super::session::{Credential, Member, RateLimiter, Session};
use super::{MediaCommand, SessionId, StreamKey};
use crate::auth::{self, DecodeOptions, TokenError};
use crate::protocol::{
    ClientMessage, ErrorCode, Login, PROTOCOL_VERSION, ServerMessage, StreamInfo, TrackMids,
    UpdateType, UserInfo, ids, parse_client_message,
};

/// The time, as the core sees it: a monotonic instant for timeouts and Unix seconds for tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub unix: i64,
}

/// What the room logic asks its adapter to do.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomOutput {
    /// Send this message to the session.
    Send {
        session: SessionId,
        message: Arc<ServerMessage>,
    },
    /// Close the session's connection after what was queued for it is sent.
    Close { session: SessionId },
    /// Tell the media plane.
    Media(MediaCommand),
}

#[derive(Debug, Default)]
struct Room {
    /// Members in the order they joined.
    members: Vec<SessionId>,
}

#[derive(Debug)]
struct StreamEntry {
    session: SessionId,
    room_id: String,
    info: StreamInfo,
    players: Vec<SessionId>,
}

#[derive(Debug)]
struct AppState {
    config: AppConfig,
    rooms: HashMap<String, Room>,
    users: HashMap<String, SessionId>,
    streams: HashMap<String, StreamEntry>,
}

impl AppState {
    fn new(config: AppConfig) -> Self {
        AppState {
            config,
            rooms: HashMap::new(),
            users: HashMap::new(),
            streams: HashMap::new(),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct RoomMetrics {
    pub messages_in: BTreeMap<&'static str, u64>,
    pub rejected_frames: BTreeMap<u32, u64>,
    pub auth_failures: BTreeMap<u32, u64>,
    pub kicks: BTreeMap<u32, u64>,
    pub logins: u64,
    pub sessions_opened: u64,
}

/// The room logic for every app.
pub struct RoomService {
    config: RoomConfig,
    apps: HashMap<u32, AppState>,
    sessions: HashMap<SessionId, Session>,
    next_session: u64,
    rng: StdRng,
    out: VecDeque<RoomOutput>,
    metrics: RoomMetrics,
    shutting_down: bool,
}

type Reply = Result<(), (ErrorCode, Option<String>)>;

impl RoomService {
    /// A room service; `seed` seeds the nonces and minted tokens' randomness.
    pub fn new(config: RoomConfig, seed: u64) -> Self {
        let apps = config
            .apps
            .iter()
            .map(|a| (a.app_id, AppState::new(a.clone())))
            .collect();
        RoomService {
            config,
            apps,
            sessions: HashMap::new(),
            next_session: 1,
            rng: StdRng::seed_from_u64(seed),
            out: VecDeque::new(),
            metrics: RoomMetrics::default(),
            shutting_down: false,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &RoomConfig {
        &self.config
    }

    /// A new connection: sends it `hello`.
    pub fn connect(&mut self, now: Now) -> SessionId {
        let id = SessionId(self.next_session);
        self.next_session += 1;
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let nonce = hex::encode(nonce);
        self.sessions.insert(
            id,
            Session {
                id,
                nonce: nonce.clone(),
                last_seen: now.mono,
                rate: RateLimiter::new(self.config.limits.messages_per_second, now.mono),
                member: None,
            },
        );
        self.metrics.sessions_opened += 1;
        self.send(
            id,
            ServerMessage::Hello {
                version: PROTOCOL_VERSION,
                nonce,
                heartbeat_interval_ms: self.config.heartbeat_interval.as_millis() as u64,
                session_timeout_ms: self.config.session_timeout.as_millis() as u64,
            },
        );
        if self.shutting_down {
            self.kick(id, ErrorCode::ServerShuttingDown);
        }
        id
    }

    /// The connection closed (or broke): release everything it held, at once.
    pub fn disconnect(&mut self, _now: Now, session: SessionId) {
        if self.sessions.contains_key(&session) {
            self.remove_member(session);
            self.sessions.remove(&session);
            self.out
                .push_back(RoomOutput::Media(MediaCommand::SessionClosed { session }));
        }
    }

    /// A binary frame, which the protocol does not use.
    pub fn handle_binary(&mut self, now: Now, session: SessionId) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.last_seen = now.mono;
            self.reject(session, ErrorCode::BinaryFrame);
        }
    }

    /// One text frame from a session.
    pub fn handle_text(&mut self, now: Now, session: SessionId, text: &str) {
        let limits = self.config.limits;
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        s.last_seen = now.mono;
        if !s.rate.allow(now.mono) {
            let kick = s.rate.refused >= s.rate.kick_threshold();
            let report = s.rate.may_report(now.mono);
            *self
                .metrics
                .rejected_frames
                .entry(ErrorCode::RateLimited.code())
                .or_default() += 1;
            if kick {
                self.kick(session, ErrorCode::RateLimited);
            } else if report {
                self.send(
                    session,
                    ServerMessage::error(ErrorCode::RateLimited, None, None),
                );
            }
            return;
        }
        if text.len() > limits.message_bytes {
            self.reject(session, ErrorCode::MessageTooLarge);
            return;
        }
        let msg = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                let code = e.code();
                *self.metrics.rejected_frames.entry(code.code()).or_default() += 1;
                self.send(
                    session,
                    ServerMessage::Error {
                        code,
                        message: e.to_string(),
                        request: None,
                        stream_id: None,
                    },
                );
                return;
            }
        };
        let kind = msg.kind();
        *self.metrics.messages_in.entry(kind).or_default() += 1;
        let stream_id = match &msg {
            ClientMessage::Publish { stream_id, .. }
            | ClientMessage::StopPublish { stream_id }
            | ClientMessage::Play { stream_id, .. }
            | ClientMessage::StopPlay { stream_id } => Some(stream_id.clone()),
            _ => None,
        };
        let result = self.dispatch(now, session, msg);
        if let Err((code, detail)) = result {
            if (1001000..1002000).contains(&code.code()) {
                *self.metrics.auth_failures.entry(code.code()).or_default() += 1;
            }
            let message = match detail {
                Some(d) => format!("{}: {d}", code.description()),
                None => code.description().to_string(),
            };
            self.send(
                session,
                ServerMessage::Error {
                    code,
                    message,
                    request: Some(kind.to_string()),
                    stream_id,
                },
            );
        }
    }

    fn reject(&mut self, session: SessionId, code: ErrorCode) {
        *self.metrics.rejected_frames.entry(code.code()).or_default() += 1;
        self.send(session, ServerMessage::error(code, None, None));
    }

    fn dispatch(&mut self, now: Now, session: SessionId, msg: ClientMessage) -> Reply {
        match msg {
            ClientMessage::Login(login) => self.login(now, session, login),
            ClientMessage::Heartbeat {} => {
                let ms = (now.unix.max(0) as u64).saturating_mul(1000);
                self.send(session, ServerMessage::HeartbeatAck { server_time_ms: ms });
                Ok(())
            }
            ClientMessage::Logout { room_id } => {
                let member = self.member(session)?;
                if member.room_id != room_id {
                    return Err((ErrorCode::WrongRoom, None));
                }
                self.remove_member(session);
                self.send(session, ServerMessage::LogoutResult { room_id });
                Ok(())
            }
            ClientMessage::Publish {
                stream_id,
                extra_info,
                mids,
            } => self.publish(session, stream_id, extra_info, mids),
            ClientMessage::StopPublish { stream_id } => {
                let member = self.member(session)?;
                if !member.published.contains(&stream_id) {
                    return Err((ErrorCode::NotPublishing, None));
                }
                let app_id = member.app_id;
                self.unpublish(app_id, std::slice::from_ref(&stream_id));
                self.send(session, ServerMessage::StopPublishResult { stream_id });
                Ok(())
            }
            ClientMessage::Play { stream_id, mids } => self.play(session, stream_id, mids),
            ClientMessage::StopPlay { stream_id } => {
                let member = self.member(session)?;
                if !member.playing.contains(&stream_id) {
                    return Err((ErrorCode::NotPlaying, None));
                }
                let app_id = member.app_id;
                self.stop_play(session, app_id, &stream_id);
                self.send(
                    session,
                    ServerMessage::PlayStopped {
                        stream_id,
                        code: None,
                    },
                );
                Ok(())
            }
            ClientMessage::RenewToken { token } => self.renew_token(now, session, token),
            ClientMessage::Offer { sdp } => {
                self.member(session)?;
                self.media(MediaCommand::Offer { session, sdp });
                Ok(())
            }
            ClientMessage::Candidate { candidate, sdp_mid } => {
                self.member(session)?;
                self.media(MediaCommand::Candidate {
                    session,
                    candidate,
                    sdp_mid,
                });
                Ok(())
            }
        }
    }

    fn member(&self, session: SessionId) -> Result<&Member, (ErrorCode, Option<String>)> {
        self.sessions
            .get(&session)
            .and_then(|s| s.member.as_ref())
            .ok_or((ErrorCode::NotLoggedIn, None))
    }

    fn member_mut(&mut self, session: SessionId) -> Option<&mut Member> {
        self.sessions.get_mut(&session)?.member.as_mut()
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            allow_legacy_cbc: self.config.allow_legacy_cbc_tokens,
            clock_skew_secs: self.config.clock_skew_secs,
        }
    }

    /// Checks a token for (app, user, room) and returns its claims.
    fn check_token(
        &self,
        now: Now,
        app: &AppConfig,
        token: &str,
        user_id: &str,
        room_id: &str,
    ) -> Result<auth::TokenClaims, ErrorCode> {
        let claims =
            auth::token04::decode(token, &app.server_secret, now.unix, self.decode_options())
                .map_err(|e| match e {
                    TokenError::Invalid => ErrorCode::TokenInvalid,
                    TokenError::Expired => ErrorCode::TokenExpired,
                    TokenError::LegacyRefused => ErrorCode::LegacyTokenRefused,
                })?;
        if claims.app_id != app.app_id || claims.user_id != user_id {
            return Err(ErrorCode::TokenUserMismatch);
        }
        if claims.room_id.as_deref().is_some_and(|r| r != room_id) {
            return Err(ErrorCode::TokenRoomMismatch);
        }
        if !claims.privileges.login {
            return Err(ErrorCode::TokenNoLoginPrivilege);
        }
        Ok(claims)
    }

    fn login(&mut self, now: Now, session: SessionId, login: Login) -> Reply {
        let Some(s) = self.sessions.get(&session) else {
            return Ok(());
        };
        if s.member.is_some() {
            return Err((ErrorCode::AlreadyLoggedIn, None));
        }
        if login.version != PROTOCOL_VERSION {
            return Err((
                ErrorCode::UnsupportedVersion,
                Some(format!(
                    "client speaks {}, server speaks {PROTOCOL_VERSION}",
                    login.version
                )),
            ));
        }
        let app = self
            .apps
            .get(&login.app_id)
            .ok_or((ErrorCode::UnknownAppId, None))?;
        ids::validate_room_id(&login.room_id).map_err(|c| (c, None))?;
        ids::validate_user_id(&login.user_id).map_err(|c| (c, None))?;
        ids::validate_user_name(&login.user_name).map_err(|c| (c, None))?;
        if app.config.revoked_users.contains(&login.user_id) {
            return Err((ErrorCode::UserRevoked, None));
        }
        let credential = if let Some(token) = &login.token {
            let claims = self
                .check_token(now, &app.config, token, &login.user_id, &login.room_id)
                .map_err(|c| (c, None))?;
            Credential::Token(claims)
        } else if let Some(proof) = &login.app_sign_proof {
            let sign = match (&app.config.app_sign, app.config.allow_app_sign) {
                (Some(sign), true) => sign,
                _ => return Err((ErrorCode::AppSignNotAllowed, None)),
            };
            if !auth::appsign::verify(
                sign,
                &s.nonce,
                login.app_id,
                &login.room_id,
                &login.user_id,
                proof,
            ) {
                return Err((ErrorCode::AppSignInvalid, None));
            }
            Credential::AppSign
        } else {
            return Err((ErrorCode::NoCredentials, None));
        };

        // Limits, counting the slot a duplicate login of the same user is about to free.
        let limits = self.config.limits;
        let previous = app.users.get(&login.user_id).copied();
        match app.rooms.get(&login.room_id) {
            Some(room) => {
                let freed = previous.is_some_and(|p| room.members.contains(&p));
                if room.members.len() - usize::from(freed) >= limits.users_per_room {
                    return Err((ErrorCode::RoomFull, None));
                }
            }
            None => {
                let freed = previous
                    .and_then(|p| self.sessions.get(&p))
                    .and_then(|s| s.member.as_ref())
                    .and_then(|m| app.rooms.get(&m.room_id))
                    .is_some_and(|r| r.members.len() == 1);
                if app.rooms.len() - usize::from(freed) >= limits.rooms_per_app {
                    return Err((ErrorCode::TooManyRooms, None));
                }
            }
        }
        if let Some(prev) = previous {
            self.kick(prev, ErrorCode::KickedDuplicateLogin);
        }

        let app_id = login.app_id;
        let member = Member {
            app_id,
            room_id: login.room_id.clone(),
            user_id: login.user_id.clone(),
            user_name: login.user_name.clone(),
            user_updates: login.user_updates,
            credential,
            warned: false,
            published: Default::default(),
            playing: Default::default(),
        };
        let token_expire = member.token_expire();
        let me = UserInfo {
            user_id: login.user_id.clone(),
            user_name: login.user_name.clone(),
        };
        let Some(app) = self.apps.get_mut(&app_id) else {
            return Err((ErrorCode::InternalError, None));
        };
        app.users.insert(login.user_id.clone(), session);
        let room = app.rooms.entry(login.room_id.clone()).or_default();
        let others: Vec<SessionId> = room.members.clone();
        room.members.push(session);
        let mut streams: Vec<StreamInfo> = app
            .streams
            .values()
            .filter(|e| e.room_id == login.room_id)
            .map(|e| e.info.clone())
            .collect();
        streams.sort_by(|a, b| a.stream_id.cmp(&b.stream_id));
        if let Some(s) = self.sessions.get_mut(&session) {
            s.member = Some(member);
        }
        let users: Vec<UserInfo> = others
            .iter()
            .filter_map(|o| self.sessions.get(o)?.member.as_ref())
            .map(|m| UserInfo {
                user_id: m.user_id.clone(),
                user_name: m.user_name.clone(),
            })
            .collect();
        self.metrics.logins += 1;
        self.send(
            session,
            ServerMessage::LoginResult {
                room_id: login.room_id.clone(),
                session_id: session.to_string(),
                users,
                streams,
                token_expire,
            },
        );
        let update = Arc::new(ServerMessage::UserUpdate {
            room_id: login.room_id,
            update_type: UpdateType::Add,
            users: vec![me],
        });
        self.broadcast_user_update(&others, update);
        Ok(())
    }

    fn broadcast_user_update(&mut self, to: &[SessionId], update: Arc<ServerMessage>) {
        for o in to {
            let wants = self
                .sessions
                .get(o)
                .and_then(|s| s.member.as_ref())
                .is_some_and(|m| m.user_updates);
            if wants {
                self.out.push_back(RoomOutput::Send {
                    session: *o,
                    message: update.clone(),
                });
            }
        }
    }

    fn publish(
        &mut self,
        session: SessionId,
        stream_id: String,
        extra_info: String,
        mids: TrackMids,
    ) -> Reply {
        let limits = self.config.limits;
        let member = self.member(session)?;
        ids::validate_stream_id(&stream_id).map_err(|c| (c, None))?;
        ids::validate_extra_info(&extra_info).map_err(|c| (c, None))?;
        if let Credential::Token(claims) = &member.credential {
            if !claims.privileges.publish {
                return Err((ErrorCode::TokenNoPublishPrivilege, None));
            }
            if !claims.allows_stream(&stream_id) {
                return Err((ErrorCode::TokenStreamNotAllowed, None));
            }
        }
        let app_id = member.app_id;
        let room_id = member.room_id.clone();
        let info = StreamInfo {
            stream_id: stream_id.clone(),
            user_id: member.user_id.clone(),
            user_name: member.user_name.clone(),
            extra_info,
        };
        let already_mine = member.published.contains(&stream_id);
        let count = member.published.len();
        let app = self
            .apps
            .get_mut(&app_id)
            .ok_or((ErrorCode::InternalError, None))?;
        if let Some(existing) = app.streams.get(&stream_id) {
            if existing.session == session && already_mine {
                // Idempotent: the same session asking again.
                self.send(session, ServerMessage::PublishResult { stream_id });
                return Ok(());
            }
            return Err((ErrorCode::DuplicateStream, None));
        }
        if count >= limits.streams_per_session {
            return Err((ErrorCode::TooManyStreams, None));
        }
        app.streams.insert(
            stream_id.clone(),
            StreamEntry {
                session,
                room_id: room_id.clone(),
                info: info.clone(),
                players: Vec::new(),
            },
        );
        let others: Vec<SessionId> = app
            .rooms
            .get(&room_id)
            .map(|r| {
                r.members
                    .iter()
                    .copied()
                    .filter(|m| *m != session)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(m) = self.member_mut(session) {
            m.published.insert(stream_id.clone());
        }
        self.send(
            session,
            ServerMessage::PublishResult {
                stream_id: stream_id.clone(),
            },
        );
        self.media(MediaCommand::Publish {
            session,
            stream: StreamKey { app_id, stream_id },
            mids,
        });
        let update = Arc::new(ServerMessage::StreamUpdate {
            room_id,
            update_type: UpdateType::Add,
            streams: vec![info],
        });
        for o in others {
            self.out.push_back(RoomOutput::Send {
                session: o,
                message: update.clone(),
            });
        }
        Ok(())
    }

    /// Removes streams (all of one publisher's session, which is in one room): DELETE to the
    /// room, `playStopped` to their players, and the media plane told.
    fn unpublish(&mut self, app_id: u32, stream_ids: &[String]) {
        if stream_ids.is_empty() {
            return;
        }
        let Some(app) = self.apps.get_mut(&app_id) else {
            return;
        };
        let mut removed = Vec::new();
        for id in stream_ids {
            if let Some(e) = app.streams.remove(id) {
                removed.push(e);
            }
        }
        let Some(first) = removed.first() else {
            return;
        };
        let room_id = first.room_id.clone();
        let publisher = first.session;
        let others: Vec<SessionId> = app
            .rooms
            .get(&room_id)
            .map(|r| {
                r.members
                    .iter()
                    .copied()
                    .filter(|m| *m != publisher)
                    .collect()
            })
            .unwrap_or_default();
        let mut infos = Vec::new();
        for e in removed {
            if let Some(m) = self.member_mut(e.session) {
                m.published.remove(&e.info.stream_id);
            }
            self.media(MediaCommand::Unpublish {
                session: e.session,
                stream: StreamKey {
                    app_id,
                    stream_id: e.info.stream_id.clone(),
                },
            });
            for p in e.players {
                if let Some(m) = self.member_mut(p) {
                    m.playing.remove(&e.info.stream_id);
                }
                self.send(
                    p,
                    ServerMessage::PlayStopped {
                        stream_id: e.info.stream_id.clone(),
                        code: Some(ErrorCode::StreamNotFound),
                    },
                );
            }
            infos.push(e.info);
        }
        let update = Arc::new(ServerMessage::StreamUpdate {
            room_id,
            update_type: UpdateType::Delete,
            streams: infos,
        });
        for o in others {
            self.out.push_back(RoomOutput::Send {
                session: o,
                message: update.clone(),
            });
        }
    }

    fn play(&mut self, session: SessionId, stream_id: String, mids: TrackMids) -> Reply {
        let member = self.member(session)?;
        ids::validate_stream_id(&stream_id).map_err(|c| (c, None))?;
        if let Credential::Token(claims) = &member.credential
            && !claims.privileges.play
        {
            return Err((ErrorCode::TokenNoPlayPrivilege, None));
        }
        let app_id = member.app_id;
        let room_id = member.room_id.clone();
        let already = member.playing.contains(&stream_id);
        let app = self
            .apps
            .get_mut(&app_id)
            .ok_or((ErrorCode::InternalError, None))?;
        let entry = app
            .streams
            .get_mut(&stream_id)
            .filter(|e| e.room_id == room_id)
            .ok_or((ErrorCode::StreamNotFound, None))?;
        if !already {
            entry.players.push(session);
        }
        if let Some(m) = self.member_mut(session) {
            m.playing.insert(stream_id.clone());
        }
        self.send(
            session,
            ServerMessage::PlayResult {
                stream_id: stream_id.clone(),
            },
        );
        self.media(MediaCommand::Play {
            session,
            stream: StreamKey { app_id, stream_id },
            mids,
        });
        Ok(())
    }

    fn stop_play(&mut self, session: SessionId, app_id: u32, stream_id: &str) {
        if let Some(m) = self.member_mut(session) {
            m.playing.remove(stream_id);
        }
        if let Some(e) = self
            .apps
            .get_mut(&app_id)
            .and_then(|a| a.streams.get_mut(stream_id))
        {
            e.players.retain(|p| *p != session);
        }
        self.media(MediaCommand::StopPlay {
            session,
            stream: StreamKey {
                app_id,
                stream_id: stream_id.to_string(),
            },
        });
    }

    fn renew_token(&mut self, now: Now, session: SessionId, token: Option<String>) -> Reply {
        let member = self.member(session)?;
        let Credential::Token(old) = &member.credential else {
            return Err((
                ErrorCode::TokenRenewalRefused,
                Some("this session logged in with an app sign, not a token".into()),
            ));
        };
        let app = self
            .apps
            .get(&member.app_id)
            .ok_or((ErrorCode::InternalError, None))?;
        let (claims, minted) = match token {
            Some(t) => {
                let c = self
                    .check_token(now, &app.config, &t, &member.user_id, &member.room_id)
                    .map_err(|c| (c, None))?;
                (c, None)
            }
            None => {
                // The session's current token must still be valid to earn a new one.
                if old.expire.saturating_add(self.config.clock_skew_secs) < now.unix {
                    return Err((ErrorCode::TokenExpired, None));
                }
                // The claims are whatever the token generator wrote: saturate, never overflow.
                let ttl = old
                    .expire
                    .saturating_sub(old.ctime)
                    .clamp(60, 30 * 24 * 3600);
                let req = auth::MintRequest {
                    app_id: old.app_id,
                    user_id: old.user_id.clone(),
                    room_id: old.room_id.clone(),
                    privileges: old.privileges,
                    stream_ids: old.stream_ids.clone(),
                    now_unix: now.unix,
                    ttl_secs: ttl,
                };
                let secret = app.config.server_secret.clone();
                let t = auth::token04::mint(&req, &secret, &mut self.rng)
                    .map_err(|e| (ErrorCode::InternalError, Some(e.to_string())))?;
                let c = auth::token04::decode(&t, &secret, now.unix, self.decode_options())
                    .map_err(|_| (ErrorCode::InternalError, None))?;
                (c, Some(t))
            }
        };
        let expire = claims.expire;
        if let Some(m) = self.member_mut(session) {
            m.credential = Credential::Token(claims);
            m.warned = false;
        }
        self.send(
            session,
            ServerMessage::TokenRenewed {
                token: minted,
                expire,
            },
        );
        Ok(())
    }

    /// Takes a session out of its room: its streams are unpublished, its plays stopped, and its
    /// peers told. The connection stays open (after a logout) unless the caller closes it.
    fn remove_member(&mut self, session: SessionId) {
        let Some(member) = self
            .sessions
            .get_mut(&session)
            .and_then(|s| s.member.take())
        else {
            return;
        };
        let published: Vec<String> = member.published.iter().cloned().collect();
        self.unpublish(member.app_id, &published);
        for stream_id in &member.playing {
            self.stop_play(session, member.app_id, stream_id);
        }
        let Some(app) = self.apps.get_mut(&member.app_id) else {
            return;
        };
        if app.users.get(&member.user_id) == Some(&session) {
            app.users.remove(&member.user_id);
        }
        let mut others = Vec::new();
        if let Some(room) = app.rooms.get_mut(&member.room_id) {
            room.members.retain(|m| *m != session);
            others = room.members.clone();
            if room.members.is_empty() {
                app.rooms.remove(&member.room_id);
            }
        }
        let update = Arc::new(ServerMessage::UserUpdate {
            room_id: member.room_id.clone(),
            update_type: UpdateType::Delete,
            users: vec![UserInfo {
                user_id: member.user_id.clone(),
                user_name: member.user_name.clone(),
            }],
        });
        self.broadcast_user_update(&others, update);
    }

    /// Ends a session from the server's side: `kicked`, release everything, close.
    pub fn kick(&mut self, session: SessionId, code: ErrorCode) {
        if !self.sessions.contains_key(&session) {
            return;
        }
        *self.metrics.kicks.entry(code.code()).or_default() += 1;
        self.send(
            session,
            ServerMessage::Kicked {
                code,
                reason: code.description().to_string(),
            },
        );
        self.remove_member(session);
        self.sessions.remove(&session);
        self.out
            .push_back(RoomOutput::Media(MediaCommand::SessionClosed { session }));
        self.out.push_back(RoomOutput::Close { session });
    }

    /// Time passes: heartbeat timeouts, token warnings and token expiry.
    pub fn handle_timeout(&mut self, now: Now) {
        let timeout = self.config.session_timeout;
        let warn = self.config.token_warning_secs;
        let skew = self.config.clock_skew_secs;
        let mut silent = Vec::new();
        let mut expired = Vec::new();
        let mut warn_now = Vec::new();
        for s in self.sessions.values() {
            if now.mono.saturating_duration_since(s.last_seen) > timeout {
                silent.push(s.id);
                continue;
            }
            if let Some(m) = &s.member
                && let Some(exp) = m.token_expire()
            {
                if exp.saturating_add(skew) < now.unix {
                    expired.push(s.id);
                } else if !m.warned && exp - now.unix <= warn {
                    warn_now.push((s.id, exp - now.unix));
                }
            }
        }
        silent.sort();
        expired.sort();
        warn_now.sort();
        for id in silent {
            self.kick(id, ErrorCode::HeartbeatTimeout);
        }
        for id in expired {
            self.kick(id, ErrorCode::KickedTokenExpired);
        }
        for (id, remaining) in warn_now {
            if let Some(m) = self.member_mut(id) {
                m.warned = true;
            }
            self.send(
                id,
                ServerMessage::TokenWillExpire {
                    remaining_secs: remaining.max(0),
                },
            );
        }
    }

    /// The earliest heartbeat deadline (token deadlines are checked on the adapter's regular tick).
    /// A session timeout too long for the clock to express gives no deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| s.last_seen.checked_add(self.config.session_timeout))
            .min()
    }

    /// The server is stopping: every session is told and closed, nothing is left half-done.
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort();
        for id in ids {
            self.kick(id, ErrorCode::ServerShuttingDown);
        }
    }

    /// Applies a new configuration (apps, limits, timeouts). Sessions of removed apps and of
    /// newly revoked users are kicked.
    pub fn reload(&mut self, config: RoomConfig) {
        let mut kick = Vec::new();
        for (id, s) in &self.sessions {
            if let Some(m) = &s.member {
                match config.apps.iter().find(|a| a.app_id == m.app_id) {
                    None => kick.push((*id, ErrorCode::UnknownAppId)),
                    Some(a) if a.revoked_users.contains(&m.user_id) => {
                        kick.push((*id, ErrorCode::KickedRevoked))
                    }
                    Some(_) => {}
                }
            }
        }
        kick.sort_by_key(|(id, _)| *id);
        for (id, code) in kick {
            self.kick(id, code);
        }
        for a in &config.apps {
            match self.apps.get_mut(&a.app_id) {
                Some(state) => state.config = a.clone(),
                None => {
                    self.apps.insert(a.app_id, AppState::new(a.clone()));
                }
            }
        }
        self.apps
            .retain(|id, _| config.apps.iter().any(|a| a.app_id == *id));
        self.config = config;
    }

    /// The next thing for the adapter to do.
    pub fn poll_output(&mut self) -> Option<RoomOutput> {
        self.out.pop_front()
    }

    fn send(&mut self, session: SessionId, message: ServerMessage) {
        self.out.push_back(RoomOutput::Send {
            session,
            message: Arc::new(message),
        });
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.out.push_back(RoomOutput::Media(cmd));
    }

    /// Open connections.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Logged-in sessions.
    pub fn member_count(&self) -> usize {
        self.sessions
            .values()
            .filter(|s| s.member.is_some())
            .count()
    }

    /// Rooms with at least one user, over all apps.
    pub fn room_count(&self) -> usize {
        self.apps.values().map(|a| a.rooms.len()).sum()
    }

    /// Published streams, over all apps.
    pub fn stream_count(&self) -> usize {
        self.apps.values().map(|a| a.streams.len()).sum()
    }

    /// The counters.
    pub fn metrics(&self) -> &RoomMetrics {
        &self.metrics
    }

    /// Prometheus text lines for the room logic.
    pub fn write_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let m = &self.metrics;
        let _ = writeln!(out, "# HELP roomcam_sessions Open signalling connections.");
        let _ = writeln!(out, "# TYPE roomcam_sessions gauge");
        let _ = writeln!(out, "roomcam_sessions {}", self.session_count());
        let _ = writeln!(out, "# HELP roomcam_users Logged-in sessions.");
        let _ = writeln!(out, "# TYPE roomcam_users gauge");
        let _ = writeln!(out, "roomcam_users {}", self.member_count());
        let _ = writeln!(out, "# HELP roomcam_rooms Rooms with at least one user.");
        let _ = writeln!(out, "# TYPE roomcam_rooms gauge");
        let _ = writeln!(out, "roomcam_rooms {}", self.room_count());
        let _ = writeln!(out, "# HELP roomcam_streams Published streams.");
        let _ = writeln!(out, "# TYPE roomcam_streams gauge");
        let _ = writeln!(out, "roomcam_streams {}", self.stream_count());
        let _ = writeln!(out, "# HELP roomcam_logins_total Successful logins.");
        let _ = writeln!(out, "# TYPE roomcam_logins_total counter");
        let _ = writeln!(out, "roomcam_logins_total {}", m.logins);
        let _ = writeln!(
            out,
            "# HELP roomcam_sessions_opened_total Connections accepted."
        );
        let _ = writeln!(out, "# TYPE roomcam_sessions_opened_total counter");
        let _ = writeln!(out, "roomcam_sessions_opened_total {}", m.sessions_opened);
        let _ = writeln!(
            out,
            "# HELP roomcam_messages_total Client messages by type."
        );
        let _ = writeln!(out, "# TYPE roomcam_messages_total counter");
        for kind in ClientMessage::KINDS {
            let n = m.messages_in.get(kind).copied().unwrap_or(0);
            let _ = writeln!(out, "roomcam_messages_total{{type=\"{kind}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP roomcam_rejected_frames_total Frames refused before dispatch, by error code."
        );
        let _ = writeln!(out, "# TYPE roomcam_rejected_frames_total counter");
        for (code, n) in &m.rejected_frames {
            let _ = writeln!(out, "roomcam_rejected_frames_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP roomcam_auth_failures_total Refused logins and renewals, by error code."
        );
        let _ = writeln!(out, "# TYPE roomcam_auth_failures_total counter");
        let total: u64 = m.auth_failures.values().sum();
        let _ = writeln!(out, "roomcam_auth_failures_total {total}");
        for (code, n) in &m.auth_failures {
            let _ = writeln!(
                out,
                "roomcam_auth_failures_by_code_total{{code=\"{code}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP roomcam_kicks_total Sessions ended by the server, by error code."
        );
        let _ = writeln!(out, "# TYPE roomcam_kicks_total counter");
        for (code, n) in &m.kicks {
            let _ = writeln!(out, "roomcam_kicks_total{{code=\"{code}\"}} {n}");
        }
    }
}

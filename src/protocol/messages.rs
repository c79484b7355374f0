//! The signalling messages: JSON text frames over WebSocket, tagged by `type` (camelCase).
//!
//! `docs/protocol.md` is the prose version of this file; keep them in step.

use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// The protocol version this build speaks. A login with another version gets
/// [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u32 = 1;

/// ADD or DELETE, as in the seed's update callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum UpdateType {
    Add,
    Delete,
}

/// A user as other members of a room see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserInfo {
    pub user_id: String,
    pub user_name: String,
}

/// A published stream as the members of a room see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamInfo {
    pub stream_id: String,
    pub user_id: String,
    pub user_name: String,
    #[serde(default)]
    pub extra_info: String,
}

/// Where the tracks of one stream sit in the client's SDP: the `a=mid` of its video and audio
/// m-lines. Sent with `publish` and `play` so that the SFU can tie m-lines to streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrackMids {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<String>,
}

impl TrackMids {
    /// True when neither track is named (a room-only request, with no media).
    pub fn is_empty(&self) -> bool {
        self.video.is_none() && self.audio.is_none()
    }
}

/// The login request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Login {
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u32,
    pub app_id: u32,
    pub room_id: String,
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    /// A token04 token (preferred).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Development only: hex HMAC-SHA256 proof over the server's `hello` nonce (see `auth::appsign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_sign_proof: Option<String>,
    /// Ask for `userUpdate` messages (the seed's `isUserStatusNotify`).
    #[serde(default)]
    pub user_updates: bool,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ClientMessage {
    /// Log into a room (creating it if it does not exist).
    Login(Login),
    /// Leave the room: stops everything this session publishes and plays.
    Logout { room_id: String },
    /// Keep the session alive; any message does, this one when there is nothing else to say.
    Heartbeat {},
    /// Start publishing a stream. With `mids`, the tracks are in the session's next SDP offer.
    Publish {
        stream_id: String,
        #[serde(default)]
        extra_info: String,
        #[serde(default)]
        mids: TrackMids,
    },
    /// Stop publishing a stream.
    StopPublish { stream_id: String },
    /// Start playing a stream. With `mids`, the receiving tracks are in the session's next SDP offer.
    Play {
        stream_id: String,
        #[serde(default)]
        mids: TrackMids,
    },
    /// Stop playing a stream.
    StopPlay { stream_id: String },
    /// Renew the session's token: with `token`, replace it by that one; without, ask the
    /// server to mint a fresh one with the same privileges.
    RenewToken {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// An SDP offer for this session's WebRTC session (the client always offers).
    Offer { sdp: String },
    /// A trickled ICE candidate (an empty `candidate` means end of candidates).
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
    },
}

impl ClientMessage {
    /// The `type` tag, for metrics and error replies.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientMessage::Login(_) => "login",
            ClientMessage::Logout { .. } => "logout",
            ClientMessage::Heartbeat {} => "heartbeat",
            ClientMessage::Publish { .. } => "publish",
            ClientMessage::StopPublish { .. } => "stopPublish",
            ClientMessage::Play { .. } => "play",
            ClientMessage::StopPlay { .. } => "stopPlay",
            ClientMessage::RenewToken { .. } => "renewToken",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Candidate { .. } => "candidate",
        }
    }

    /// Every client message type, for metrics labels and docs.
    pub const KINDS: &'static [&'static str] = &[
        "login",
        "logout",
        "heartbeat",
        "publish",
        "stopPublish",
        "play",
        "stopPlay",
        "renewToken",
        "offer",
        "candidate",
    ];
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum ServerMessage {
    /// First message on every connection.
    Hello {
        version: u32,
        /// Hex nonce for an app-sign proof on this connection.
        nonce: String,
        heartbeat_interval_ms: u64,
        session_timeout_ms: u64,
    },
    /// The login succeeded: the room as it is now.
    LoginResult {
        room_id: String,
        session_id: String,
        users: Vec<UserInfo>,
        streams: Vec<StreamInfo>,
        /// Unix seconds when the token expires (absent for app-sign logins).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token_expire: Option<i64>,
    },
    /// The logout is done; the session may log in again.
    LogoutResult { room_id: String },
    /// Answer to `heartbeat`.
    HeartbeatAck { server_time_ms: u64 },
    /// Users came or went (only to sessions that logged in with `userUpdates`).
    UserUpdate {
        room_id: String,
        update_type: UpdateType,
        users: Vec<UserInfo>,
    },
    /// Streams came or went.
    StreamUpdate {
        room_id: String,
        update_type: UpdateType,
        streams: Vec<StreamInfo>,
    },
    /// The publish was accepted: the stream is in the room.
    PublishResult { stream_id: String },
    /// The stop-publish is done.
    StopPublishResult { stream_id: String },
    /// The play was accepted.
    PlayResult { stream_id: String },
    /// The stop-play is done, or the played stream ended (with the reason's code).
    PlayStopped {
        stream_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<ErrorCode>,
    },
    /// The session's token expires soon: renew it.
    TokenWillExpire { remaining_secs: i64 },
    /// The token was renewed. `token` is present when the server minted it.
    TokenRenewed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        expire: i64,
    },
    /// The session is being closed by the server; the socket closes after this message.
    Kicked { code: ErrorCode, reason: String },
    /// A request failed. The session carries on unless a `kicked` follows.
    Error {
        code: ErrorCode,
        message: String,
        /// The `type` of the request that failed, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stream_id: Option<String>,
    },
    /// The SDP answer to the client's offer.
    Answer { sdp: String },
    /// A server ICE candidate.
    Candidate {
        candidate: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp_mid: Option<String>,
    },
}

impl ServerMessage {
    /// An error reply for a request.
    pub fn error(code: ErrorCode, request: Option<&str>, stream_id: Option<&str>) -> Self {
        ServerMessage::Error {
            code,
            message: code.description().to_string(),
            request: request.map(str::to_string),
            stream_id: stream_id.map(str::to_string),
        }
    }

    /// The `type` tag, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Hello { .. } => "hello",
            ServerMessage::LoginResult { .. } => "loginResult",
            ServerMessage::LogoutResult { .. } => "logoutResult",
            ServerMessage::HeartbeatAck { .. } => "heartbeatAck",
            ServerMessage::UserUpdate { .. } => "userUpdate",
            ServerMessage::StreamUpdate { .. } => "streamUpdate",
            ServerMessage::PublishResult { .. } => "publishResult",
            ServerMessage::StopPublishResult { .. } => "stopPublishResult",
            ServerMessage::PlayResult { .. } => "playResult",
            ServerMessage::PlayStopped { .. } => "playStopped",
            ServerMessage::TokenWillExpire { .. } => "tokenWillExpire",
            ServerMessage::TokenRenewed { .. } => "tokenRenewed",
            ServerMessage::Kicked { .. } => "kicked",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Answer { .. } => "answer",
            ServerMessage::Candidate { .. } => "candidate",
        }
    }
}

/// Why a text frame could not be read as a [`ClientMessage`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("malformed message: {0}")]
    Malformed(String),
}

impl ParseError {
    /// The protocol error code for this parse failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::UnknownType(_) => ErrorCode::UnknownMessageType,
            ParseError::Malformed(_) => ErrorCode::MalformedMessage,
        }
    }
}

/// Parses one client text frame, telling an unknown `type` apart from a malformed message.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ParseError> {
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(m) => Ok(m),
        Err(e) => {
            // Look at the tag alone to give the better error.
            #[derive(Deserialize)]
            struct Tag {
                #[serde(rename = "type")]
                kind: String,
            }
            if let Ok(Tag { kind }) = serde_json::from_str::<Tag>(text)
                && !ClientMessage::KINDS.contains(&kind.as_str())
            {
                return Err(ParseError::UnknownType(cut(kind, 64)));
            }
            Err(ParseError::Malformed(cut(e.to_string(), 200)))
        }
    }
}

/// `s` cut to at most `max` bytes, on a character boundary (the text is the client's: a cut
/// inside a multi-byte character must not panic).
fn cut(mut s: String, max: usize) -> String {
    s.truncate(s.floor_char_boundary(max));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_round_trips_with_camel_case_fields() {
        let text = r#"{"type":"login","version":1,"appId":7,"roomId":"r1","userId":"u1","userName":"U","token":"04x","userUpdates":true}"#;
        let m = parse_client_message(text).unwrap();
        let ClientMessage::Login(l) = &m else {
            panic!("not a login: {m:?}")
        };
        assert_eq!(l.app_id, 7);
        assert!(l.user_updates);
        let back = serde_json::to_string(&m).unwrap();
        assert_eq!(parse_client_message(&back).unwrap(), m);
    }

    #[test]
    fn unknown_type_is_told_apart_from_malformed() {
        assert_eq!(
            parse_client_message(r#"{"type":"dance"}"#),
            Err(ParseError::UnknownType("dance".into()))
        );
        assert!(matches!(
            parse_client_message("{"),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"publish"}"#),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message(r#"{"type":"heartbeat","extra":1}"#),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse_client_message("[1,2]"),
            Err(ParseError::Malformed(_))
        ));
    }

    #[test]
    fn server_error_carries_numeric_code() {
        let m = ServerMessage::error(ErrorCode::StreamNotFound, Some("play"), Some("s1"));
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], 1004001);
        assert_eq!(v["streamId"], "s1");
        assert_eq!(v["request"], "play");
    }
}

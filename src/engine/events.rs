//! The engine's typed events: the seed's callbacks as one stream of values.

use crate::protocol::{ErrorCode, StreamInfo, UpdateType, UserInfo};

/// The connection state of a room (the seed's `ZegoRoomState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RoomState {
    Disconnected,
    Connecting,
    Connected,
}

/// Why the room state changed (the seed's `ZegoRoomStateChangedReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RoomStateReason {
    /// Logging in (CONNECTING).
    Logining,
    /// Logged in (CONNECTED).
    Logined,
    /// The login failed (DISCONNECTED); `error_code` says why.
    LoginFailed,
    /// The connection was lost; retrying (CONNECTING).
    Reconnecting,
    /// Back after a loss; publishing and playing resume by themselves (CONNECTED).
    Reconnected,
    /// Gave up reconnecting after the configured limit (DISCONNECTED).
    ReconnectFailed,
    /// The server ended the session, e.g. the same user logged in elsewhere (DISCONNECTED).
    KickOut,
    /// Logged out (DISCONNECTED).
    Logout,
    /// The logout failed.
    LogoutFailed,
}

/// A publisher's state (the seed's `ZegoPublisherState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PublisherState {
    NoPublish,
    PublishRequesting,
    Publishing,
}

/// A player's state (the seed's `ZegoPlayerState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlayerState {
    NoPlay,
    PlayRequesting,
    Playing,
}

/// One engine event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    RoomStateUpdate {
        room_id: String,
        state: RoomState,
        reason: RoomStateReason,
        /// 0 = no error, else a code from `docs/protocol.md`.
        error_code: u32,
        /// JSON text with details (for example the server's message), `{}` when none.
        extended_data: String,
    },
    /// Users came or went (only when the login asked for user notifications).
    RoomUserUpdate {
        room_id: String,
        update_type: UpdateType,
        users: Vec<UserInfo>,
    },
    /// Streams came or went.
    RoomStreamUpdate {
        room_id: String,
        update_type: UpdateType,
        streams: Vec<StreamInfo>,
    },
    PublisherStateUpdate {
        stream_id: String,
        state: PublisherState,
        error_code: u32,
    },
    PlayerStateUpdate {
        stream_id: String,
        state: PlayerState,
        error_code: u32,
    },
    /// The room token expires in `remaining_secs`: call `renew_token`.
    TokenWillExpire {
        room_id: String,
        remaining_secs: i64,
    },
}

pub(crate) fn code(c: Option<ErrorCode>) -> u32 {
    c.map(ErrorCode::code).unwrap_or(0)
}

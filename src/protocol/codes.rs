//! Numeric error codes of the signalling protocol, in families modelled on the seed SDK's.
//!
//! The code is what a program matches on; the message is for people. `docs/protocol.md` lists
//! every code in a table; a test checks that the table and this enum agree.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $num:literal, $text:literal; )*) => {
        /// Every error code the room service and the engine use.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name, )*
        }

        impl ErrorCode {
            /// All codes, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The number on the wire.
            pub fn code(self) -> u32 {
                match self { $(ErrorCode::$name => $num,)* }
            }

            /// A one-line description for people.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$name => $text,)* }
            }

            /// The code for a number, if it is one of ours.
            pub fn from_code(code: u32) -> Option<ErrorCode> {
                match code { $($num => Some(ErrorCode::$name),)* _ => None }
            }

            /// The variant's name, as used in the docs table.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$name => stringify!($name),)* }
            }
        }
    };
}

error_codes! {
    // 1000xxx: the connection and the message layer
    /// The frame is not valid JSON or does not match any message's shape.
    MalformedMessage = 1000001, "malformed message: not JSON, or a field is missing or of the wrong type";
    /// The `type` field names no message this server knows.
    UnknownMessageType = 1000002, "unknown message type";
    /// The frame is larger than `[limits] message_bytes`.
    MessageTooLarge = 1000003, "message larger than the server's limit";
    /// The session sent more messages per second than `[limits] messages_per_second`.
    RateLimited = 1000004, "too many messages per second; slow down";
    /// The client speaks a protocol version this server does not.
    UnsupportedVersion = 1000005, "unsupported protocol version";
    /// A room request arrived before a successful login.
    NotLoggedIn = 1000006, "not logged in: log in first";
    /// A login arrived on a session that is already logged in.
    AlreadyLoggedIn = 1000007, "already logged in on this connection: log out first";
    /// The server failed in a way that is not the client's fault.
    InternalError = 1000008, "internal server error";
    /// The server is shutting down; reconnect later.
    ServerShuttingDown = 1000009, "server is shutting down";
    /// Binary frames are not part of the protocol.
    BinaryFrame = 1000010, "binary frames are not accepted; send JSON text";
    /// The session's outgoing queue overflowed: it did not read its messages.
    SlowConsumer = 1000011, "session dropped: it did not read its messages";

    // 1001xxx: authentication
    /// The token could not be decoded, decrypted or authenticated (one code for every such case).
    TokenInvalid = 1001001, "token invalid: it could not be decoded or authenticated";
    /// The token's expiry (inside the ciphertext) has passed.
    TokenExpired = 1001002, "token expired";
    /// The token does not grant the login privilege.
    TokenNoLoginPrivilege = 1001003, "token does not grant login";
    /// The token does not grant the publish privilege.
    TokenNoPublishPrivilege = 1001004, "token does not grant publishing";
    /// The token does not grant the play privilege.
    TokenNoPlayPrivilege = 1001005, "token does not grant playing";
    /// The token is bound to another room.
    TokenRoomMismatch = 1001006, "token was issued for another room";
    /// The token was issued for another user id or app id.
    TokenUserMismatch = 1001007, "token was issued for another user or app";
    /// No app with this app id is configured.
    UnknownAppId = 1001008, "unknown app id";
    /// App-sign login is not allowed for this app.
    AppSignNotAllowed = 1001009, "app-sign login is not allowed for this app (development only)";
    /// The app-sign proof did not verify.
    AppSignInvalid = 1001010, "app-sign proof invalid";
    /// The user id is on the app's revocation list.
    UserRevoked = 1001011, "user is revoked";
    /// The token names stream ids and this is not one of them.
    TokenStreamNotAllowed = 1001012, "token does not allow this stream id";
    /// A legacy CBC token was presented and the server does not allow them.
    LegacyTokenRefused = 1001013, "legacy AES-CBC tokens are refused by this server";
    /// Neither a token nor an app-sign proof was given.
    NoCredentials = 1001014, "login needs a token or an app-sign proof";
    /// A token renewal was asked for with a token that does not match the session.
    TokenRenewalRefused = 1001015, "token renewal refused";

    // 1002xxx: rooms and users
    /// The room id breaks the length or character rules.
    InvalidRoomId = 1002001, "invalid room id: 1-128 bytes of letters, digits and ~!@#$%^&*()_+=-`;',.<>/\\";
    /// The user id breaks the length or character rules.
    InvalidUserId = 1002002, "invalid user id: 1-64 bytes of letters, digits and ~!@#$%^&*()_+=-`;',.<>/\\";
    /// The user name is too long or holds control characters.
    InvalidUserName = 1002003, "invalid user name: at most 256 bytes, no control characters";
    /// The room already holds `[limits] users_per_room` users.
    RoomFull = 1002004, "room is full";
    /// The app already has `[limits] rooms_per_app` rooms.
    TooManyRooms = 1002005, "too many rooms for this app";
    /// Kicked: the same user id logged in elsewhere.
    KickedDuplicateLogin = 1002006, "kicked: the same user id logged in elsewhere";
    /// The session missed its heartbeats and was removed.
    HeartbeatTimeout = 1002007, "session timed out: no heartbeat";
    /// Kicked: the session's token expired and was not renewed.
    KickedTokenExpired = 1002008, "kicked: token expired and was not renewed";
    /// Kicked: the user id was revoked.
    KickedRevoked = 1002009, "kicked: user revoked";
    /// The request names a room this session is not logged into.
    WrongRoom = 1002010, "not logged into that room";

    // 1003xxx: publishing
    /// The stream id breaks the length or character rules.
    InvalidStreamId = 1003001, "invalid stream id: 1-256 bytes of letters, digits, '-' and '_'";
    /// Another session already publishes this stream id in this app.
    DuplicateStream = 1003002, "stream id is already being published";
    /// A stop or media request for a stream this session does not publish.
    NotPublishing = 1003003, "this session does not publish that stream";
    /// The session already publishes `[limits] streams_per_user` streams.
    TooManyStreams = 1003004, "too many streams published by this session";
    /// The stream's extra info is too long.
    InvalidExtraInfo = 1003005, "stream extra info too long (at most 1024 bytes)";

    // 1004xxx: playing
    /// Play of a stream that does not exist in the room.
    StreamNotFound = 1004001, "stream not found in this room";
    /// A stop for a stream this session does not play.
    NotPlaying = 1004002, "this session does not play that stream";

    // 1005xxx: the engine's connection (reported by the device, not sent by the server)
    /// The engine gave up reconnecting after its configured limit.
    ReconnectFailed = 1005001, "reconnect failed: gave up after the configured limit";
    /// The server did not answer within the engine's timeout.
    ServerTimeout = 1005002, "the server did not answer in time";
    /// The connection to the server failed or was closed.
    ConnectionFailed = 1005003, "could not connect to the server, or the connection closed";
    /// The server sent something that is not this protocol.
    ProtocolViolation = 1005004, "the server sent a message that breaks the protocol";
    /// The room service's TLS certificate was refused (unknown issuer, name mismatch, expired).
    TlsCertificateRejected = 1005005, "the server's TLS certificate was refused: unknown issuer, wrong name or expired";

    // 1006xxx: media (WebRTC sessions)
    /// The SDP could not be parsed or applied.
    InvalidSdp = 1006001, "invalid SDP";
    /// The offer has no codec this server forwards (H.264 packetization-mode 1, Opus).
    NoCommonCodec = 1006002, "no common codec: H.264 (packetization-mode 1) and Opus are required";
    /// The ICE candidate could not be parsed.
    InvalidCandidate = 1006003, "invalid ICE candidate";
    /// The WebRTC session failed (DTLS, ICE or an internal fault) and was closed.
    MediaSessionFailed = 1006004, "media session failed";
    /// A media message arrived without a WebRTC session (send an offer first).
    NoMediaSession = 1006005, "no media session: send an SDP offer first";
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.code())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        ErrorCode::from_code(n)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {n}")))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate code {}", c.code());
            assert_eq!(ErrorCode::from_code(c.code()), Some(*c));
        }
        assert_eq!(ErrorCode::from_code(42), None);
    }

    #[test]
    fn serializes_as_number() {
        let s = serde_json::to_string(&ErrorCode::DuplicateStream).unwrap();
        assert_eq!(s, "1003002");
        let back: ErrorCode = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ErrorCode::DuplicateStream);
        assert!(serde_json::from_str::<ErrorCode>("7").is_err());
    }
}

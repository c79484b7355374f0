//! What the room logic tells the media plane (the SFU). The room owns streams: the SFU only
//! forwards what these commands say exists, and forgets a stream the moment it is told.

use crate::protocol::TrackMids;

/// One signalling connection, for the lifetime of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A stream's key: stream ids are unique per app id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub app_id: u32,
    pub stream_id: String,
}

/// Commands from the room logic to the media plane, in the order they must be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// `session` publishes `stream`; its tracks are the m-lines `mids` of the session's offers.
    Publish {
        session: SessionId,
        stream: StreamKey,
        mids: TrackMids,
    },
    /// The stream is gone (stop, logout, kick, timeout): stop its media and tell its players.
    Unpublish {
        session: SessionId,
        stream: StreamKey,
    },
    /// `session` plays `stream` on its m-lines `mids`.
    Play {
        session: SessionId,
        stream: StreamKey,
        mids: TrackMids,
    },
    /// `session` stops playing `stream`.
    StopPlay {
        session: SessionId,
        stream: StreamKey,
    },
    /// An SDP offer from a logged-in session.
    Offer { session: SessionId, sdp: String },
    /// A trickled ICE candidate from a logged-in session.
    Candidate {
        session: SessionId,
        candidate: String,
        sdp_mid: Option<String>,
    },
    /// The session is gone: drop its WebRTC session. Its streams were unpublished before this.
    SessionClosed { session: SessionId },
}

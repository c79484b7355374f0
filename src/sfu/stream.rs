//! A published stream as the SFU holds it: where its packets come from, who plays it, its
//! keyframe cache, sender clock and counters.

use std::time::Instant;

use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};

use super::keyframe::KeyframeCache;
use super::metrics::StreamMetrics;
use super::rewrite::{SenderClock, SeqRewrite};
use crate::room::{SessionId, StreamKey};

pub(crate) struct Stream {
    pub label: String,
    pub publisher: SessionId,
    pub video_mid: Option<Mid>,
    pub players: Vec<Player>,
    pub keyframes: KeyframeCache,
    pub last_keyframe_request: Option<Instant>,
    /// A keyframe request was held back by the rate limit: send it when allowed.
    pub keyframe_wanted: bool,
    pub clock: SenderClock,
    pub metrics: StreamMetrics,
    /// The publisher's payload parameters by PT, looked up once.
    pub src_params: Vec<(Pt, PayloadParams)>,
    /// The publisher sends SPS/PPS in-band (so a keyframe starts with them).
    pub sps_in_band: bool,
    /// The publisher's current SSRCs, to notice a restarted source.
    pub video_ssrc: Option<u32>,
    pub audio_ssrc: Option<u32>,
}

impl Stream {
    pub fn new(
        key: &StreamKey,
        publisher: SessionId,
        video_mid: Option<Mid>,
        cache_packets: usize,
    ) -> Self {
        Stream {
            label: format!("{}/{}", key.app_id, key.stream_id),
            publisher,
            video_mid,
            players: Vec::new(),
            keyframes: KeyframeCache::new(cache_packets),
            last_keyframe_request: None,
            keyframe_wanted: false,
            clock: SenderClock::default(),
            metrics: StreamMetrics::default(),
            src_params: Vec::new(),
            sps_in_band: false,
            video_ssrc: None,
            audio_ssrc: None,
        }
    }
}

/// One session playing one stream.
pub(crate) struct Player {
    pub session: SessionId,
    pub video: Option<TrackOut>,
    pub audio: Option<TrackOut>,
    /// Started: given the keyframe cache (or a keyframe was asked for).
    pub started: bool,
    /// Video flows to this player (it has had a keyframe and nothing was dropped since).
    pub video_live: bool,
}

impl Player {
    pub fn new(session: SessionId, video: Option<Mid>, audio: Option<Mid>) -> Self {
        // Start sequence numbers low and session-dependent; no ROC has to be signalled.
        let first = 1000 + (session.0 % 20_000) as u16;
        Player {
            session,
            video: video.map(|mid| TrackOut::new(mid, first)),
            audio: audio.map(|mid| TrackOut::new(mid, first)),
            started: false,
            video_live: false,
        }
    }
}

/// One outgoing m-line of a player.
pub(crate) struct TrackOut {
    pub mid: Mid,
    pub seq: SeqRewrite,
    /// Publisher PT -> player PT.
    pub pt_map: Vec<(Pt, Pt)>,
    /// Highest sequence number the player reported receiving (RTCP receiver reports).
    pub reported_max: Option<u64>,
    /// When the reported maximum last moved (or writing started): the stall detector's clock.
    pub last_progress: Option<Instant>,
}

impl TrackOut {
    fn new(mid: Mid, first_seq: u16) -> Self {
        TrackOut {
            mid,
            seq: SeqRewrite::new(first_seq),
            pt_map: Vec::new(),
            reported_max: None,
            last_progress: None,
        }
    }
}

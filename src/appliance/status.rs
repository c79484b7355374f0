//! The device's status report (`GET /status` on `[status] listen`), built from the engine's
//! states and counters and the media pipelines' counters. Pure: the HTTP server is in the binary.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::engine::{EngineStatus, PlayerState, PublisherState, RoomState};

/// Counters of one played stream's decoders.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayerMediaStats {
    pub video_frames_decoded: u64,
    pub audio_frames_decoded: u64,
    pub width: u32,
    pub height: u32,
    pub latency_ms_p50: Option<f64>,
    pub latency_ms_p95: Option<f64>,
    /// Frames that arrived after their due time (audio and video).
    pub late_frames: u64,
    /// Audio packets dropped as too late to play.
    pub audio_frames_dropped: u64,
    /// Times the playout moved its timing (jitter allowance or clock offset).
    pub playout_adjustments: u64,
}

/// Counters of the media side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaStats {
    /// The encoder element in use ("x264enc", "v4l2h264enc").
    pub encoder: String,
    pub bitrate_kbps: u32,
    /// The video source in use (`test pattern`, `/dev/video0 MJPG 1280x720@30 + jpegdec`).
    pub video_source: String,
    /// Mean time a raw frame spends in the encoder, recent frames (µs).
    pub encode_time_us_mean: Option<u64>,
    /// The camera is gone and the "Camera unavailable" card is published instead.
    pub camera_unavailable: bool,
    pub players: HashMap<String, PlayerMediaStats>,
    /// What the microphone side publishes (`microphone plughw:CARD=…`, `test tone 440 Hz`).
    pub audio_capture: String,
    /// The microphone is open (`Some(false)`: missing, silence published; `None`: no microphone).
    pub audio_capture_on_device: Option<bool>,
    /// The speaker's output (`none`, an ALSA PCM).
    pub audio_playback: String,
    /// The speaker's output device is open (false while it is missing, and for `none`).
    pub audio_playback_on_device: bool,
    /// 10 ms buffers the speaker has mixed (silence included).
    pub audio_mix_buffers: u64,
    /// Frequency of the mix over the last half second, when it is a clear tone.
    pub audio_mix_tone_hz: Option<f64>,
    /// Share of the mix's last half second that sounds (see `SpeakerStats::sounding_share`).
    pub audio_mix_sounding_share: Option<f64>,
    /// The session's screen, when there is one.
    pub screen: Option<ScreenStatus>,
}

/// The screen as the status endpoint shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScreenStatus {
    /// `kms`, `window`, `none`.
    pub sink: String,
    /// A display shows the picture (`kms`: the connector is connected and the sink opened).
    pub output_running: bool,
    pub connector: Option<String>,
    pub width: u32,
    pub height: u32,
    /// Participants on screen.
    pub shown: usize,
    pub preview: bool,
    pub idle_text: String,
    pub output_starts: u64,
    /// Pictures composed, and pictures that reached the display sink.
    pub frames_composed: u64,
    pub frames_displayed: u64,
}

/// The call as a person would describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Idle,
    Standby,
    Joining,
    InCall,
    Ending,
    Error,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Idle => "idle",
            CallState::Standby => "standby",
            CallState::Joining => "joining",
            CallState::InCall => "in_call",
            CallState::Ending => "ending",
            CallState::Error => "error",
        }
    }
}

fn room_state(s: Option<RoomState>) -> &'static str {
    match s {
        Some(RoomState::Connected) => "CONNECTED",
        Some(RoomState::Connecting) => "CONNECTING",
        Some(RoomState::Disconnected) | None => "DISCONNECTED",
    }
}

fn pub_state(s: PublisherState) -> &'static str {
    match s {
        PublisherState::NoPublish => "NO_PUBLISH",
        PublisherState::PublishRequesting => "PUBLISH_REQUESTING",
        PublisherState::Publishing => "PUBLISHING",
    }
}

fn play_state(s: PlayerState) -> &'static str {
    match s {
        PlayerState::NoPlay => "NO_PLAY",
        PlayerState::PlayRequesting => "PLAY_REQUESTING",
        PlayerState::Playing => "PLAYING",
    }
}

/// The status document (SPEC.md's fields, and a few more).
pub fn status_json(
    call: CallState,
    room_id: &str,
    stream_id: &str,
    engine: &EngineStatus,
    media: &MediaStats,
) -> Value {
    let publisher = match engine.publishers.get(stream_id) {
        Some(p) => json!({
            "stream_id": stream_id,
            "state": pub_state(p.state),
            "encoder": media.encoder,
            "video_frames_sent": p.video_frames_sent,
            "audio_frames_sent": p.audio_frames_sent,
            "bitrate_kbps": media.bitrate_kbps,
            "encode_time_us_mean": media.encode_time_us_mean,
            "video_source": media.video_source,
            "camera_unavailable": media.camera_unavailable,
        }),
        None => json!({
            "stream_id": stream_id,
            "state": "NO_PUBLISH",
            "encoder": media.encoder,
            "video_frames_sent": 0,
            "audio_frames_sent": 0,
            "bitrate_kbps": 0,
            "camera_unavailable": false,
        }),
    };
    let mut ids: Vec<&String> = engine.players.keys().collect();
    ids.sort();
    let players: Vec<Value> = ids
        .into_iter()
        .map(|id| {
            let p = &engine.players[id];
            let m = media.players.get(id).cloned().unwrap_or_default();
            json!({
                "stream_id": id,
                "user_id": p.user_id,
                "state": play_state(p.state),
                "video_frames_received": p.video_frames_received,
                "audio_frames_received": p.audio_frames_received,
                "video_frames_decoded": m.video_frames_decoded,
                "audio_frames_decoded": m.audio_frames_decoded,
                "width": m.width,
                "height": m.height,
                "latency_ms_p50": m.latency_ms_p50,
                "latency_ms_p95": m.latency_ms_p95,
                "late_frames": m.late_frames,
                "audio_frames_dropped": m.audio_frames_dropped,
                "playout_adjustments": m.playout_adjustments,
            })
        })
        .collect();
    json!({
        "call": call.as_str(),
        "room": {
            "id": engine.room_id.clone().unwrap_or_else(|| room_id.to_string()),
            "state": room_state(engine.room_state),
            "reason": engine.reason.clone().unwrap_or_default(),
            "error_code": engine.error_code,
        },
        "publisher": publisher,
        "players": players,
        "target_bitrate_kbps": engine.target_bitrate_bps / 1000,
        // "udp", "tcp" (ICE-TCP fallback), or null before media connects.
        "media_transport": engine.media_transport.map(|t| t.as_str()),
        "audio": {
            "capture": media.audio_capture,
            "capture_on_device": media.audio_capture_on_device,
            "playback": media.audio_playback,
            "playback_on_device": media.audio_playback_on_device,
            "mix_buffers": media.audio_mix_buffers,
            "mix_tone_hz": media.audio_mix_tone_hz.map(|v| v.round()),
            "mix_sounding_share": media.audio_mix_sounding_share.map(|v| (v * 100.0).round() / 100.0),
        },
        "screen": media.screen.as_ref().map(|s| json!({
            "sink": s.sink,
            "output_running": s.output_running,
            "connector": s.connector,
            "width": s.width,
            "height": s.height,
            "shown": s.shown,
            "preview": s.preview,
            "idle_text": s.idle_text,
            "output_starts": s.output_starts,
            "frames_composed": s.frames_composed,
            "frames_displayed": s.frames_displayed,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{PlayerStatus, PublisherStatus};

    #[test]
    fn has_the_spec_fields() {
        let mut e = EngineStatus {
            room_id: Some("room1".into()),
            room_state: Some(RoomState::Connected),
            reason: Some("Logined".into()),
            ..Default::default()
        };
        e.publishers.insert(
            "me".into(),
            PublisherStatus {
                state: PublisherState::Publishing,
                video_frames_sent: 5,
                audio_frames_sent: 9,
                bytes_sent: 100,
            },
        );
        e.players.insert(
            "them".into(),
            PlayerStatus {
                state: PlayerState::Playing,
                user_id: "u2".into(),
                video_frames_received: 4,
                audio_frames_received: 3,
            },
        );
        let mut m = MediaStats {
            encoder: "x264enc".into(),
            bitrate_kbps: 800,
            audio_capture: "microphone hw:1,0".into(),
            audio_capture_on_device: Some(false),
            audio_playback: "hdmi:CARD=vc4hdmi0,DEV=0".into(),
            audio_playback_on_device: true,
            audio_mix_buffers: 1234,
            audio_mix_tone_hz: Some(879.6),
            audio_mix_sounding_share: Some(0.874),
            ..Default::default()
        };
        m.players.insert(
            "them".into(),
            PlayerMediaStats {
                video_frames_decoded: 4,
                width: 640,
                height: 480,
                latency_ms_p50: Some(30.0),
                late_frames: 7,
                audio_frames_dropped: 3,
                ..Default::default()
            },
        );
        let v = status_json(CallState::InCall, "room1", "me", &e, &m);
        assert_eq!(v["call"], "in_call");
        assert_eq!(v["room"]["state"], "CONNECTED");
        assert_eq!(v["room"]["reason"], "Logined");
        assert_eq!(v["publisher"]["state"], "PUBLISHING");
        assert_eq!(v["publisher"]["encoder"], "x264enc");
        assert_eq!(v["publisher"]["video_frames_sent"], 5);
        assert_eq!(v["players"][0]["stream_id"], "them");
        assert_eq!(v["players"][0]["state"], "PLAYING");
        assert_eq!(v["players"][0]["width"], 640);
        assert_eq!(v["players"][0]["latency_ms_p50"], 30.0);
        assert!(v["players"][0]["latency_ms_p95"].is_null());
        assert_eq!(v["players"][0]["late_frames"], 7);
        assert_eq!(v["players"][0]["audio_frames_dropped"], 3);
        assert_eq!(v["players"][0]["playout_adjustments"], 0);
        assert_eq!(v["audio"]["capture"], "microphone hw:1,0");
        assert_eq!(v["audio"]["capture_on_device"], false);
        assert_eq!(v["audio"]["playback_on_device"], true);
        assert_eq!(v["audio"]["mix_buffers"], 1234);
        assert_eq!(v["audio"]["mix_tone_hz"], 880.0);
        assert_eq!(v["audio"]["mix_sounding_share"], 0.87);
        assert!(v["media_transport"].is_null(), "no media path yet");
        e.media_transport = Some(crate::ice_tcp::Transport::Tcp);
        let v = status_json(CallState::InCall, "room1", "me", &e, &m);
        assert_eq!(v["media_transport"], "tcp");
    }
}

//! Counters of the media plane, rendered as Prometheus text. Names are listed in docs/sfu.md.

use std::fmt::Write;

/// Counters of one published stream, labelled `stream="<app_id>/<stream_id>"`.
#[derive(Debug, Default, Clone)]
pub struct StreamMetrics {
    pub video_packets: u64,
    pub video_bytes: u64,
    pub audio_packets: u64,
    pub audio_bytes: u64,
    /// Packets written to players (all players together).
    pub forwarded_packets: u64,
    /// Packets not written to a player because its queue was full.
    pub dropped_packets: u64,
    /// NACKs received from this stream's players (answered by str0m from the RTX buffer).
    pub nacks_from_players: u64,
    /// NACKs the SFU sent to the publisher.
    pub nacks_to_publisher: u64,
    /// Keyframe requests (PLI) sent to the publisher.
    pub keyframe_requests: u64,
    /// Players started from the keyframe cache.
    pub keyframe_cache_hits: u64,
    /// The bitrate last asked of the publisher (REMB), bits/s; 0 before the first.
    pub target_bitrate_bps: u64,
    /// Players of this stream.
    pub players: u64,
}

/// Counters of the whole SFU.
#[derive(Debug, Default, Clone)]
pub struct SfuMetrics {
    pub garbage_datagrams: u64,
    pub unrouted_datagrams: u64,
    pub session_failures: u64,
    pub panics_caught: u64,
    /// Packets received and sent on ICE-TCP connections (RFC 6544).
    pub tcp_packets_received: u64,
    pub tcp_packets_sent: u64,
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn write_header(out: &mut String) {
    for (name, kind, help) in [
        (
            "roomcam_sfu_stream_packets_total",
            "counter",
            "RTP packets received from the publisher",
        ),
        (
            "roomcam_sfu_stream_bytes_total",
            "counter",
            "RTP payload bytes received from the publisher",
        ),
        (
            "roomcam_sfu_stream_forwarded_packets_total",
            "counter",
            "RTP packets written to players",
        ),
        (
            "roomcam_sfu_stream_dropped_packets_total",
            "counter",
            "RTP packets dropped for a player whose queue was full",
        ),
        (
            "roomcam_sfu_stream_nacks_total",
            "counter",
            "NACKs by direction",
        ),
        (
            "roomcam_sfu_stream_keyframe_requests_total",
            "counter",
            "keyframe requests (PLI) sent to the publisher",
        ),
        (
            "roomcam_sfu_stream_keyframe_cache_hits_total",
            "counter",
            "players started from the keyframe cache",
        ),
        (
            "roomcam_sfu_stream_estimated_bitrate_bps",
            "gauge",
            "target bitrate sent to the publisher (REMB)",
        ),
        (
            "roomcam_sfu_stream_players",
            "gauge",
            "players of the stream",
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
}

impl StreamMetrics {
    pub fn write(&self, label: &str, out: &mut String) {
        let l = esc(label);
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_packets_total{{stream=\"{l}\",kind=\"video\"}} {}",
            self.video_packets
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_packets_total{{stream=\"{l}\",kind=\"audio\"}} {}",
            self.audio_packets
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_bytes_total{{stream=\"{l}\",kind=\"video\"}} {}",
            self.video_bytes
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_bytes_total{{stream=\"{l}\",kind=\"audio\"}} {}",
            self.audio_bytes
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_forwarded_packets_total{{stream=\"{l}\"}} {}",
            self.forwarded_packets
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_dropped_packets_total{{stream=\"{l}\"}} {}",
            self.dropped_packets
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_nacks_total{{stream=\"{l}\",direction=\"from_players\"}} {}",
            self.nacks_from_players
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_nacks_total{{stream=\"{l}\",direction=\"to_publisher\"}} {}",
            self.nacks_to_publisher
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_keyframe_requests_total{{stream=\"{l}\"}} {}",
            self.keyframe_requests
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_keyframe_cache_hits_total{{stream=\"{l}\"}} {}",
            self.keyframe_cache_hits
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_estimated_bitrate_bps{{stream=\"{l}\"}} {}",
            self.target_bitrate_bps
        );
        let _ = writeln!(
            out,
            "roomcam_sfu_stream_players{{stream=\"{l}\"}} {}",
            self.players
        );
    }
}

impl SfuMetrics {
    pub fn write(&self, sessions: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_sessions gauge\nroomcam_sfu_sessions {sessions}"
        );
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_garbage_datagrams_total counter\nroomcam_sfu_garbage_datagrams_total {}",
            self.garbage_datagrams
        );
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_unrouted_datagrams_total counter\nroomcam_sfu_unrouted_datagrams_total {}",
            self.unrouted_datagrams
        );
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_session_failures_total counter\nroomcam_sfu_session_failures_total {}",
            self.session_failures
        );
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_panics_caught_total counter\nroomcam_sfu_panics_caught_total {}",
            self.panics_caught
        );
        let _ = writeln!(
            out,
            "# TYPE roomcam_sfu_ice_tcp_packets_total counter\n\
             roomcam_sfu_ice_tcp_packets_total{{direction=\"received\"}} {}\n\
             roomcam_sfu_ice_tcp_packets_total{{direction=\"sent\"}} {}",
            self.tcp_packets_received, self.tcp_packets_sent
        );
    }
}

//! The packet path: an RTP packet from a publisher's `Rtc` is written, header-rewritten, into
//! each player's `Rtc` (str0m RTP mode: no depacketizing). Also how players start (keyframe
//! cache) and how keyframes are asked of publishers (rate-limited PLI).

use std::collections::HashMap;

use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};

use super::h264;
use super::keyframe::{CacheState, CachedPacket};
use super::session::{Session, guarded};
use super::stream::{Player, TrackOut};
use super::{Sfu, codec};
use crate::protocol::ErrorCode;
use crate::room::{SessionId, StreamKey};

/// Result of writing one packet to one player.
#[derive(Debug, PartialEq, Eq)]
enum Write {
    Written,
    /// The player's m-line or connection is not there yet.
    NotReady,
    /// The player's queue is full: dropped for this player only.
    Full,
    /// Not for this player (predates its start).
    Skipped,
    /// The player's session panicked.
    Failed,
}

/// Borrowed parts of the SFU needed to write into players, so that a stream can be borrowed
/// mutably at the same time.
struct Writer<'a> {
    sessions: &'a mut HashMap<SessionId, Session>,
    dirty: &'a mut Vec<SessionId>,
    failed: &'a mut Vec<SessionId>,
    max_queue: usize,
    now: std::time::Instant,
}

impl Writer<'_> {
    fn write(
        &mut self,
        sid: SessionId,
        track: &mut TrackOut,
        p: &CachedPacket,
        src: &PayloadParams,
        nackable: bool,
    ) -> Write {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return Write::NotReady;
        };
        if !session.connected {
            return Write::NotReady;
        }
        let max_queue = self.max_queue;
        let res = guarded(sid, || {
            let out_pt = match track.pt_map.iter().find(|(i, _)| *i == p.pt) {
                Some((_, o)) => *o,
                None => {
                    let Some(o) = codec::match_pt(&session.rtc, track.mid, src) else {
                        return Write::NotReady;
                    };
                    track.pt_map.push((p.pt, o));
                    o
                }
            };
            let mut api = session.rtc.direct_api();
            let Some(tx) = api.stream_tx_by_mid(track.mid, None) else {
                return Write::NotReady;
            };
            if tx
                .queue_info()
                .is_some_and(|q| q.packet_count() >= max_queue)
            {
                return Write::Full;
            }
            let Some(seq) = track.seq.map(p.seq) else {
                return Write::Skipped;
            };
            let w = RtpWrite::new(out_pt, seq.into(), p.time, p.wallclock, p.payload.clone())
                .marker(p.marker)
                .ext_vals(p.exts.clone())
                .nackable(nackable);
            tx.write_rtp(w);
            Write::Written
        });
        match res {
            Ok(Write::Written) => {
                if track.last_progress.is_none() {
                    track.last_progress = Some(self.now);
                }
                if !session.dirty {
                    session.dirty = true;
                    self.dirty.push(sid);
                }
                Write::Written
            }
            Ok(other) => other,
            Err(_) => {
                self.failed.push(sid);
                Write::Failed
            }
        }
    }

    fn has_tx(&mut self, sid: SessionId, track: &TrackOut) -> bool {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return false;
        };
        if !session.connected {
            return false;
        }
        match guarded(sid, || {
            session
                .rtc
                .direct_api()
                .stream_tx_by_mid(track.mid, None)
                .is_some()
        }) {
            Ok(v) => v,
            Err(_) => {
                self.failed.push(sid);
                false
            }
        }
    }
}

/// The header extensions carried over from the publisher (str0m sets the transport ones —
/// mid, TWCC sequence, abs-send-time — per player itself).
fn carried_exts(src: &ExtensionValues) -> ExtensionValues {
    ExtensionValues {
        audio_level: src.audio_level,
        voice_activity: src.voice_activity,
        video_orientation: src.video_orientation,
        video_content_type: src.video_content_type,
        abs_capture_time: src.abs_capture_time,
        ..Default::default()
    }
}

impl Sfu {
    /// One RTP packet from a publisher: cache it if video, and write it to every player.
    pub(super) fn on_rtp(&mut self, sid: SessionId, pkt: RtpPacket) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let mid = match guarded(sid, || {
            session.rtc.direct_api().stream_rx(&ssrc).map(|s| s.mid())
        }) {
            Ok(Some(m)) => m,
            Ok(None) => match pkt.header.ext_vals.mid {
                Some(m) => m,
                None => return,
            },
            Err(_) => {
                self.metrics.panics_caught += 1;
                self.fail(sid, ErrorCode::MediaSessionFailed);
                return;
            }
        };
        let Some((key, kind)) = self.ingress.get(&(sid, mid)) else {
            return; // media on an m-line no published stream claims
        };
        let kind = *kind;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        let pt = pkt.header.payload_type;
        let params = match stream.src_params.iter().find(|(p, _)| *p == pt) {
            Some((_, params)) => *params,
            None => {
                let Some(params) = session.rtc.codec_config().find(|p| p.pt() == pt).copied()
                else {
                    return;
                };
                stream.src_params.push((pt, params));
                params
            }
        };
        let clock_rate = params.spec().clock_rate.get();
        let wallclock = stream.clock.wallclock(
            pkt.header.timestamp,
            clock_rate,
            pkt.last_sender_info.as_ref(),
            pkt.timestamp,
        );
        let cp = CachedPacket {
            seq: *pkt.seq_no,
            pt,
            time: pkt.header.timestamp,
            marker: pkt.header.marker,
            wallclock,
            exts: carried_exts(&pkt.header.ext_vals),
            payload: pkt.payload,
        };
        let video = kind == MediaKind::Video;
        let starts_keyframe = video && h264::starts_keyframe(&cp.payload);
        // Where a waiting player may join: the SPS-bearing first packet of a keyframe when the
        // publisher sends SPS in-band, else any keyframe start.
        let mut joinable = false;
        // A new source SSRC (the publisher restarted its encoder or renegotiated) starts a new
        // sequence-number space: players continue their own sequence without a gap, video from
        // the new source's next keyframe.
        let src = if video {
            &mut stream.video_ssrc
        } else {
            &mut stream.audio_ssrc
        };
        if src.is_some_and(|s| s != *ssrc) {
            if video {
                stream.keyframes.clear();
            }
            for p in stream.players.iter_mut() {
                let track = if video {
                    p.video.as_mut()
                } else {
                    p.audio.as_mut()
                };
                if let Some(t) = track {
                    t.seq.reanchor();
                }
                if video {
                    p.video_live = false;
                }
            }
        }
        *src = Some(*ssrc);
        if video {
            stream.metrics.video_packets += 1;
            stream.metrics.video_bytes += cp.payload.len() as u64;
            stream.keyframes.push(&cp, starts_keyframe);
            let sps = starts_keyframe && h264::carries_sps(&cp.payload);
            stream.sps_in_band |= sps;
            joinable = starts_keyframe
                && (sps || !stream.sps_in_band)
                && stream.keyframes.keyframe_time() == Some(cp.time);
        } else {
            stream.metrics.audio_packets += 1;
            stream.metrics.audio_bytes += cp.payload.len() as u64;
        }

        let mut failed = Vec::new();
        let mut writer = Writer {
            sessions: &mut self.sessions,
            dirty: &mut self.dirty,
            failed: &mut failed,
            max_queue: self.config.max_queue_packets,
            now: self.now,
        };
        let mut need_keyframe = false;
        let (mut forwarded, mut dropped) = (0u64, 0u64);
        let keyframes = &stream.keyframes;
        let stream_sps_in_band = stream.sps_in_band;
        let src_params = &stream.src_params;
        for player in stream.players.iter_mut() {
            let Player {
                session: psid,
                video: pv,
                audio: pa,
                started,
                video_live,
            } = player;
            if video {
                let Some(track) = pv.as_mut() else {
                    continue;
                };
                if !*video_live {
                    // Waiting for a keyframe: this one is it (whether or not the player was
                    // started from the cache; a live keyframe is as good). Give it the keyframe
                    // as cached, which includes this packet and any of the frame that arrived
                    // before it, in order.
                    if !joinable || !writer.has_tx(*psid, track) {
                        continue;
                    }
                    track.seq.reanchor();
                    *video_live = true;
                    *started = true;
                    if !stream_sps_in_band
                        || keyframes
                            .packets()
                            .next()
                            .is_some_and(|p| !h264::carries_sps(&p.payload))
                    {
                        // This keyframe may lack its parameter sets (its first packet was lost
                        // before the SFU knew the stream, or the encoder sends none in-band):
                        // ask for another, so the player is sure to get a decodable start.
                        need_keyframe = true;
                    }
                    for p in keyframes.packets() {
                        let Some((_, params)) = src_params.iter().find(|(pt, _)| *pt == p.pt)
                        else {
                            continue;
                        };
                        if writer.write(*psid, track, p, params, true) == Write::Written {
                            forwarded += 1;
                        }
                    }
                    continue;
                }
                match writer.write(*psid, track, &cp, &params, true) {
                    Write::Written => forwarded += 1,
                    Write::Full => {
                        dropped += 1;
                        *video_live = false;
                        track.seq.reanchor();
                        need_keyframe = true;
                    }
                    _ => {}
                }
            } else if let Some(track) = pa.as_mut() {
                match writer.write(*psid, track, &cp, &params, false) {
                    Write::Written => forwarded += 1,
                    Write::Full => {
                        dropped += 1;
                        track.seq.reanchor();
                    }
                    _ => {}
                }
            }
        }
        stream.metrics.forwarded_packets += forwarded;
        stream.metrics.dropped_packets += dropped;
        let key = key.clone();
        if need_keyframe {
            self.request_keyframe(&key);
        }
        for f in failed {
            self.metrics.panics_caught += 1;
            self.fail(f, ErrorCode::MediaSessionFailed);
        }
    }

    /// Starts the not-yet-started players of `sid` whose connection and m-lines are ready:
    /// from the keyframe cache when it holds something, else with a keyframe request.
    pub(super) fn start_players(&mut self, sid: SessionId) {
        let mut failed = Vec::new();
        let mut want_keyframe = Vec::new();
        let mut writer = Writer {
            sessions: &mut self.sessions,
            dirty: &mut self.dirty,
            failed: &mut failed,
            max_queue: self.config.max_queue_packets,
            now: self.now,
        };
        for (key, stream) in self.streams.iter_mut() {
            let state = stream.keyframes.state();
            for player in stream
                .players
                .iter_mut()
                .filter(|p| p.session == sid && !p.started)
            {
                let Some(track) = player.video.as_mut() else {
                    // audio-only play: nothing to wait for
                    player.started = writer.sessions.get(&sid).is_some_and(|s| s.connected);
                    continue;
                };
                if !writer.has_tx(sid, track) {
                    continue;
                }
                player.started = true;
                if state == CacheState::Empty {
                    want_keyframe.push(key.clone());
                    continue;
                }
                for cp in stream.keyframes.packets() {
                    let Some((_, params)) = stream.src_params.iter().find(|(p, _)| *p == cp.pt)
                    else {
                        continue;
                    };
                    writer.write(sid, track, cp, params, true);
                }
                stream.metrics.keyframe_cache_hits += 1;
                if state == CacheState::FullGop {
                    player.video_live = true;
                } else {
                    // Only the keyframe: hold video until the next keyframe, continuing the
                    // sequence right after what was sent.
                    track.seq.reanchor();
                    want_keyframe.push(key.clone());
                }
            }
        }
        for key in want_keyframe {
            self.request_keyframe(&key);
        }
        for f in failed {
            self.metrics.panics_caught += 1;
            self.fail(f, ErrorCode::MediaSessionFailed);
        }
    }

    /// Asks the publisher of `key` for a keyframe (PLI), at most once per
    /// `keyframe_request_interval`; a request inside the interval is sent when it ends.
    pub(super) fn request_keyframe(&mut self, key: &StreamKey) {
        let now = self.now;
        let interval = self.config.keyframe_request_interval;
        let Some(stream) = self.streams.get_mut(key) else {
            return;
        };
        if stream
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < interval)
        {
            stream.keyframe_wanted = true;
            return;
        }
        let (Some(mid), pub_sid) = (stream.video_mid, stream.publisher) else {
            stream.keyframe_wanted = false;
            return;
        };
        let Some(session) = self.sessions.get_mut(&pub_sid) else {
            return;
        };
        let sent = guarded(pub_sid, || {
            match session.rtc.direct_api().stream_rx_by_mid(mid, None) {
                Some(rx) => {
                    rx.request_keyframe(KeyframeRequestKind::Pli);
                    true
                }
                None => false,
            }
        });
        match sent {
            Ok(true) => {
                stream.last_keyframe_request = Some(now);
                stream.keyframe_wanted = false;
                stream.metrics.keyframe_requests += 1;
                self.mark_dirty(pub_sid);
            }
            Ok(false) => stream.keyframe_wanted = true, // nothing received yet; retry on the tick
            Err(_) => {
                self.metrics.panics_caught += 1;
                self.fail(pub_sid, ErrorCode::MediaSessionFailed);
            }
        }
    }
}

//! The events a session's `Rtc` reports, other than media: connection state, keyframe
//! requests from players, bandwidth estimates and RTCP statistics (NACK counts, receiver
//! reports for the stall detector).

use str0m::bwe::BweKind;
use str0m::{Event, IceConnectionState};

use super::Sfu;
use crate::protocol::ErrorCode;
use crate::room::SessionId;

impl Sfu {
    pub(super) fn on_event(&mut self, sid: SessionId, event: Event) {
        match event {
            Event::RtpPacket(p) => self.on_rtp(sid, p),
            Event::Connected => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.connected = true;
                }
                tracing::debug!(session = %sid, "WebRTC session connected");
                self.start_players(sid);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.fail(sid, ErrorCode::MediaSessionFailed);
            }
            Event::Closed => self.fail(sid, ErrorCode::MediaSessionFailed),
            Event::KeyframeRequest(req) => {
                let key = self.streams.iter().find_map(|(k, s)| {
                    s.players
                        .iter()
                        .any(|p| {
                            p.session == sid && p.video.as_ref().is_some_and(|v| v.mid == req.mid)
                        })
                        .then(|| k.clone())
                });
                if let Some(key) = key {
                    self.request_keyframe(&key);
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.egress_estimate = Some(estimate);
                }
            }
            Event::MediaEgressStats(st) => {
                let now = self.now;
                if let Some(remote) = &st.remote {
                    let reported = *remote.maximum_sequence_number;
                    tracing::trace!(session = %sid, mid = %st.mid, reported, "receiver report");
                    for stream in self.streams.values_mut() {
                        for p in stream.players.iter_mut().filter(|p| p.session == sid) {
                            for t in [p.video.as_mut(), p.audio.as_mut()].into_iter().flatten() {
                                if t.mid == st.mid && t.reported_max.is_none_or(|m| reported > m) {
                                    t.reported_max = Some(reported);
                                    t.last_progress = Some(now);
                                }
                            }
                        }
                    }
                }
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                let last = s.egress_nacks.insert(st.mid, st.nacks).unwrap_or(0);
                let delta = st.nacks.saturating_sub(last);
                if delta > 0
                    && let Some(stream) = self.streams.values_mut().find(|s| {
                        s.players.iter().any(|p| {
                            p.session == sid
                                && (p.video.as_ref().is_some_and(|v| v.mid == st.mid)
                                    || p.audio.as_ref().is_some_and(|a| a.mid == st.mid))
                        })
                    })
                {
                    stream.metrics.nacks_from_players += delta;
                }
            }
            Event::MediaIngressStats(st) => {
                let Some(s) = self.sessions.get_mut(&sid) else {
                    return;
                };
                let last = s.ingress_nacks.insert(st.mid, st.nacks).unwrap_or(0);
                let delta = st.nacks.saturating_sub(last);
                if delta > 0
                    && let Some((key, _)) = self.ingress.get(&(sid, st.mid))
                    && let Some(stream) = self.streams.get_mut(key)
                {
                    stream.metrics.nacks_to_publisher += delta;
                }
            }
            _ => {}
        }
    }
}

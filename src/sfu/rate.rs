//! Rate feedback: a published stream's target bitrate follows the weakest of its players.
//!
//! Each player session's egress estimate (str0m's TWCC-based BWE) is shared evenly between the
//! video tracks it plays. The publisher is asked (REMB) for the minimum of those shares over the
//! stream's live players, clamped to `[floor, ceiling]`. Players that sent nothing for a while
//! (a stalled or vanished downlink) do not count: they must not drag everyone down before
//! they are dropped.
//!
//! Also the stall detector: a player whose receiver reports stop progressing while packets
//! keep being written to it has stopped reading, and is dropped.

use std::collections::HashMap;
use std::time::Instant;

use str0m::bwe::Bitrate;

use super::Sfu;
use super::session::guarded;
use crate::protocol::ErrorCode;
use crate::room::SessionId;

/// One player's share of its downlink for a stream, bits/s, if it counts.
#[derive(Debug, Clone, Copy)]
pub struct PlayerShare {
    pub bps: u64,
}

/// The bitrate to ask of the publisher, or None when no player has an estimate yet.
pub fn target_bitrate(
    shares: impl IntoIterator<Item = PlayerShare>,
    floor_bps: u64,
    ceiling_bps: u64,
) -> Option<u64> {
    let weakest = shares.into_iter().map(|s| s.bps).min()?;
    Some(weakest.clamp(floor_bps, ceiling_bps.max(floor_bps)))
}

impl Sfu {
    /// Recomputes each stream's target bitrate from its players' estimates, sends it to the
    /// publisher as REMB, and tells each player's BWE what it should aim for.
    pub(super) fn update_rates(&mut self, now: Instant) {
        let cfg = self.config.clone();
        // Video tracks each session plays, to share its estimate between them.
        let mut video_tracks: HashMap<SessionId, u64> = HashMap::new();
        for s in self.streams.values() {
            for p in &s.players {
                if p.video.is_some() {
                    *video_tracks.entry(p.session).or_default() += 1;
                }
            }
        }
        let mut rembs = Vec::new();
        for stream in self.streams.values_mut() {
            let Some(mid) = stream.video_mid else {
                continue;
            };
            let shares = stream
                .players
                .iter()
                .filter(|p| p.video.is_some())
                .filter_map(|p| {
                    let s = self.sessions.get(&p.session)?;
                    if !s.connected
                        || now.saturating_duration_since(s.last_receive) > cfg.stale_player_after
                    {
                        return None;
                    }
                    let n = video_tracks.get(&p.session).copied().unwrap_or(1).max(1);
                    Some(PlayerShare {
                        bps: s.egress_estimate?.as_u64() / n,
                    })
                });
            if let Some(t) =
                target_bitrate(shares, cfg.min_video_bitrate_bps, cfg.max_video_bitrate_bps)
            {
                stream.metrics.target_bitrate_bps = t;
                rembs.push((stream.publisher, mid, t));
            }
        }
        let mut failed = Vec::new();
        for (pub_sid, mid, bps) in rembs {
            let Some(session) = self.sessions.get_mut(&pub_sid) else {
                continue;
            };
            let r = guarded(pub_sid, || {
                if let Some(rx) = session.rtc.direct_api().stream_rx_by_mid(mid, None) {
                    rx.request_remb(Bitrate::bps(bps));
                }
            });
            if r.is_err() {
                failed.push(pub_sid);
            }
        }
        for (sid, n) in video_tracks {
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            let desired = Bitrate::bps(n * cfg.max_video_bitrate_bps + n * 64_000);
            if guarded(sid, || {
                session.rtc.bwe().set_bitrate(Bitrate::ZERO, desired)
            })
            .is_err()
            {
                failed.push(sid);
            }
        }
        let dirty: Vec<SessionId> = self.sessions.keys().copied().collect();
        for sid in dirty {
            self.mark_dirty(sid);
        }
        for f in failed {
            self.metrics.panics_caught += 1;
            self.fail(f, ErrorCode::MediaSessionFailed);
        }
    }

    /// Players whose receiver reports stopped progressing although packets keep being
    /// written to them: they stopped reading.
    pub(super) fn stalled_players(&self, now: Instant) -> Vec<SessionId> {
        /// Packets written beyond the last reported one before a silent player counts as stalled.
        const STALL_PACKETS: u64 = 50;
        let mut out = Vec::new();
        for stream in self.streams.values() {
            for p in &stream.players {
                // Every track must be stalled: receivers report audio less often than video.
                let mut tracks = [p.video.as_ref(), p.audio.as_ref()]
                    .into_iter()
                    .flatten()
                    .peekable();
                let stalled = tracks.peek().is_some()
                    && tracks.all(|t| {
                        let Some(since) = t.last_progress else {
                            return false;
                        };
                        let written = t.seq.max_out().unwrap_or(0);
                        let reported = t.reported_max.unwrap_or(0);
                        tracing::trace!(session = %p.session, mid = %t.mid, written, reported, since = ?now.saturating_duration_since(since), "stall check");
                        now.saturating_duration_since(since) > self.config.stall_timeout
                            && written > reported + STALL_PACKETS
                    });
                if stalled && !out.contains(&p.session) {
                    out.push(p.session);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakest_player_wins_but_never_below_the_floor() {
        let s = |bps| PlayerShare { bps };
        assert_eq!(target_bitrate([], 100, 1000), None);
        assert_eq!(target_bitrate([s(800), s(400)], 100, 1000), Some(400));
        assert_eq!(target_bitrate([s(800), s(10)], 100, 1000), Some(100));
        assert_eq!(target_bitrate([s(5000)], 100, 1000), Some(1000));
    }
}

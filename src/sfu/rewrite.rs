//! Per-player rewriting of forwarded RTP: sequence numbers (each player gets a gap-free
//! sequence of its own, starting below 2^16 so no SRTP rollover counter must be signalled),
//! and the wallclock that str0m uses for the player's sender reports, translated from the
//! publisher's sender reports so that audio and video keep the publisher's lip sync.
//! RTP timestamps and payloads are never touched.

use std::time::{Duration, Instant, SystemTime};

use str0m::rtp::rtcp::SenderInfo;

/// Maps a publisher's extended sequence numbers onto one player's outgoing ones.
#[derive(Debug, Clone)]
pub struct SeqRewrite {
    /// out = in + delta, once anchored.
    delta: Option<i64>,
    /// The first outgoing number of the current anchor: older packets (late retransmissions
    /// from before the anchor) are not forwarded.
    anchor_out: u64,
    /// Highest outgoing number written so far.
    max_out: Option<u64>,
}

impl SeqRewrite {
    /// A fresh rewrite whose first packet gets `first_out` (keep it < 2^16).
    pub fn new(first_out: u16) -> Self {
        SeqRewrite {
            delta: None,
            anchor_out: u64::from(first_out),
            max_out: None,
        }
    }

    /// Forget the anchor: the next packet continues right after the last one written, so the
    /// player sees no gap for what was skipped (dropped packets, a wait for a keyframe).
    pub fn reanchor(&mut self) {
        if let Some(max) = self.max_out {
            self.anchor_out = max + 1;
        }
        self.delta = None;
    }

    /// The highest outgoing number written so far.
    pub fn max_out(&self) -> Option<u64> {
        self.max_out
    }

    /// The outgoing number for `seq_in`, or None when the packet predates the anchor.
    pub fn map(&mut self, seq_in: u64) -> Option<u64> {
        let delta = *self
            .delta
            .get_or_insert(self.anchor_out as i64 - seq_in as i64);
        let out = seq_in as i64 + delta;
        if out < self.anchor_out as i64 {
            return None;
        }
        let out = out as u64;
        self.max_out = Some(self.max_out.map_or(out, |m| m.max(out)));
        Some(out)
    }
}

/// Translates a publisher's RTP timestamps to wallclock instants using its sender reports.
///
/// All tracks of one publisher share one anchor, so the audio/video offset stated by the
/// publisher's SRs survives into the SRs str0m writes to each player. Before the first SR the
/// arrival time stands in.
#[derive(Debug, Clone, Default)]
pub struct SenderClock {
    /// (publisher NTP time, our instant) fixed at the first sender report seen.
    anchor: Option<(SystemTime, Instant)>,
}

impl SenderClock {
    pub fn wallclock(
        &mut self,
        rtp_time: u32,
        clock_rate: u32,
        sender: Option<&SenderInfo>,
        arrival: Instant,
    ) -> Instant {
        let Some(sr) = sender else {
            return arrival;
        };
        if clock_rate == 0 {
            return arrival;
        }
        let (ntp0, inst0) = *self.anchor.get_or_insert((sr.ntp_time, arrival));
        let sr_rtp = sr.rtp_time.numer() as u32;
        let rtp_offset = rtp_time.wrapping_sub(sr_rtp) as i32 as f64 / f64::from(clock_rate);
        // publisher wallclock of this packet, relative to the anchor, in seconds.
        let sr_since_anchor = match sr.ntp_time.duration_since(ntp0) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        };
        let secs = sr_since_anchor + rtp_offset;
        if !secs.is_finite() || secs.abs() > 86_400.0 {
            return arrival;
        }
        let wallclock = if secs >= 0.0 {
            inst0 + Duration::from_secs_f64(secs)
        } else {
            match inst0.checked_sub(Duration::from_secs_f64(-secs)) {
                Some(w) => w,
                None => return arrival,
            }
        };
        // str0m needs the wallclock in the past (it extrapolates the SR from it). A packet that
        // would map into the future came through faster than the anchor's packet: move the
        // anchor back by the difference, for all tracks alike (tracking the shortest transit).
        if wallclock > arrival {
            let ahead = wallclock - arrival;
            if let Some((_, inst)) = self.anchor.as_mut()
                && let Some(earlier) = inst.checked_sub(ahead)
            {
                *inst = earlier;
            }
            return arrival;
        }
        wallclock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_clock_keeps_the_sr_offset_between_tracks_and_stays_in_the_past() {
        use str0m::rtp::rtcp::SenderInfo;
        let t0 = Instant::now();
        let ntp0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let sr = |ntp: SystemTime, rtp: u64, rate: u32| SenderInfo {
            ssrc: 1.into(),
            ntp_time: ntp,
            rtp_time: str0m::media::MediaTime::new(
                rtp,
                std::num::NonZeroU32::new(rate).unwrap().into(),
            ),
            sender_packet_count: 0,
            sender_octet_count: 0,
        };
        let mut c = SenderClock::default();
        // video: SR says rtp 9000 at ntp0; the packet with rtp 18000 (100 ms later) arrives at t0.
        let v = c.wallclock(18_000, 90_000, Some(&sr(ntp0, 9_000, 90_000)), t0);
        assert!(v <= t0);
        // audio: SR says rtp 0 at ntp0 - 100 ms; its packet with rtp 9600 (200 ms later, i.e.
        // ntp0 + 100 ms, the same instant as the video packet) arrives 5 ms later.
        let a = c.wallclock(
            9_600,
            48_000,
            Some(&sr(ntp0 - Duration::from_millis(100), 0, 48_000)),
            t0 + Duration::from_millis(5),
        );
        let diff = if a > v { a - v } else { v - a };
        assert!(diff < Duration::from_millis(1), "{diff:?}");
    }

    #[test]
    fn sequence_is_continuous_and_reanchors_without_gap() {
        let mut r = SeqRewrite::new(100);
        assert_eq!(r.map(70_000), Some(100));
        assert_eq!(r.map(70_002), Some(102));
        assert_eq!(r.map(70_001), Some(101));
        assert_eq!(r.map(69_999), None);
        r.reanchor();
        assert_eq!(r.map(80_000), Some(103));
        assert_eq!(r.map(80_001), Some(104));
    }
}

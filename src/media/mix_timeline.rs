//! Where each buffer of a mixer input goes on the mix's timeline: pure, unit-tested on plain
//! numbers (the I/O adapter is `mix::MixerInput`).
//!
//! What feeds a mixer input (a player's synced appsink, a capture pipeline) delivers in real
//! time, but in bursts when its thread is held up (a busy CPU). Stamping each buffer with its
//! arrival time, as `appsrc do-timestamp` does, leaves a gap in the mix for every hold-up while
//! the audio that follows queues up behind it, until the input's queue overflows and drops
//! audio: on the emulated Pi of the QEMU test only 20-50 % of a steady remote tone reached the
//! mix. So buffers are laid end to end instead:
//! - a buffer starts where the previous one ended, unless that is more than `LATE_SLACK` in
//!   the past (the input really paused, or fell behind the mix): then it starts now;
//! - a buffer that would start more than `MAX_AHEAD` ahead of now is dropped (bounded delay);
//! - after a burst the input plays behind by up to the hold-up: that backlog absorbs the next
//!   hold-up, and it is walked back when it stayed above the target for a whole `WINDOW` of
//!   buffers (one buffer dropped per window), so the delay does not stay raised for ever. The
//!   target is `TARGET` (40 ms), or the longest hold-up of the last `HOLDUP_MEMORY` when that
//!   is longer (at most `MAX_AHEAD`): a machine that keeps stalling its feeder keeps the
//!   cushion that absorbs the stalls, an idle one plays with the small delay.

use std::collections::VecDeque;
use std::time::Duration;

/// How far in the past the end of the previous buffer may be for the next to still follow it
/// (less than the mixer's latency, so it is still mixed).
const LATE_SLACK: Duration = Duration::from_millis(10);
/// At most this much audio waits ahead of now in one input; later buffers are dropped.
pub(crate) const MAX_AHEAD: Duration = Duration::from_millis(200);
/// A backlog up to this is kept as it is.
const TARGET: Duration = Duration::from_millis(40);
/// Buffers per walk-back window (1 s of 20 ms frames).
const WINDOW: u32 = 50;
/// How long a hold-up keeps the target raised.
const HOLDUP_MEMORY: Duration = Duration::from_secs(10);

/// Where a buffer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// Its presentation time on the mix's running time.
    At(Duration),
    /// Not mixed: too much is queued ahead already, or it is the one dropped to walk back.
    Drop,
}

/// The timeline of one mixer input.
#[derive(Debug, Default)]
pub(crate) struct InputTimeline {
    next: Option<Duration>,
    window_min_ahead: Option<Duration>,
    window_count: u32,
    /// Recent hold-ups: (when, how long the input had been behind).
    holdups: VecDeque<(Duration, Duration)>,
    /// Buffers dropped so far (too far ahead, or walked back).
    dropped: u64,
    /// Times the input started again from now (a pause or a fall behind).
    resyncs: u64,
}

impl InputTimeline {
    /// Places a buffer of `duration` that arrived at running time `now`.
    pub(crate) fn place(&mut self, now: Duration, duration: Duration) -> Slot {
        let start = match self.next {
            Some(next) if next + LATE_SLACK >= now => next,
            Some(next) => {
                self.resyncs += 1;
                self.holdups.push_back((now, now - next));
                now
            }
            None => now,
        };
        let ahead = start.saturating_sub(now);
        if ahead > MAX_AHEAD {
            self.dropped += 1;
            return Slot::Drop;
        }
        let min = self.window_min_ahead.map_or(ahead, |m| m.min(ahead));
        self.window_min_ahead = Some(min);
        self.window_count += 1;
        if self.window_count >= WINDOW {
            self.window_min_ahead = None;
            self.window_count = 0;
            if min > self.target(now) {
                self.dropped += 1;
                return Slot::Drop;
            }
        }
        self.next = Some(start + duration);
        Slot::At(start)
    }

    /// The backlog kept: `TARGET`, or the longest recent hold-up (at most `MAX_AHEAD`).
    fn target(&mut self, now: Duration) -> Duration {
        while self
            .holdups
            .front()
            .is_some_and(|&(at, _)| now.saturating_sub(at) > HOLDUP_MEMORY)
        {
            self.holdups.pop_front();
        }
        let longest = self.holdups.iter().map(|&(_, d)| d).max();
        longest.unwrap_or(TARGET).clamp(TARGET, MAX_AHEAD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Duration = Duration::from_millis(20);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn steady_input_is_laid_end_to_end() {
        let mut t = InputTimeline::default();
        for i in 0..200u64 {
            // Arrival jitter of up to 8 ms does not move the audio.
            let now = ms(1000 + i * 20 + (i * 7) % 9);
            assert_eq!(t.place(now, F), Slot::At(ms(1000 + i * 20)), "buffer {i}");
        }
        assert_eq!((t.dropped, t.resyncs), (0, 0));
    }

    #[test]
    fn a_burst_after_a_hold_up_is_kept_whole_and_absorbs_the_next_one() {
        let mut t = InputTimeline::default();
        let mut placed = Vec::new();
        // 1 s steady, then the feeder is held up for 200 ms and delivers 10 buffers at once.
        for i in 0..50u64 {
            placed.push(t.place(ms(i * 20), F));
        }
        for _ in 0..10 {
            placed.push(t.place(ms(1200), F));
        }
        // Then steady again, and a second 200 ms hold-up.
        for i in 0..10u64 {
            placed.push(t.place(ms(1220 + i * 20), F));
        }
        for _ in 0..10 {
            placed.push(t.place(ms(1600), F));
        }
        assert!(
            placed.iter().all(|s| matches!(s, Slot::At(_))),
            "{placed:?}"
        );
        assert_eq!(t.resyncs, 1, "only the first hold-up left a gap");
        // The burst starts at its arrival, the rest follows it end to end.
        assert_eq!(placed[50], Slot::At(ms(1200)));
        assert_eq!(placed[79], Slot::At(ms(1200 + 29 * 20)));
    }

    #[test]
    fn more_than_max_ahead_is_dropped_and_the_backlog_is_walked_back() {
        let mut t = InputTimeline::default();
        // 300 ms of audio at once: what is beyond 200 ms ahead is dropped.
        let slots: Vec<Slot> = (0..15).map(|_| t.place(ms(0), F)).collect();
        let kept = slots.iter().filter(|s| matches!(s, Slot::At(_))).count();
        assert_eq!(kept, 11, "{slots:?}"); // starts at 0, 20, ..., 200 ms
        assert_eq!(t.dropped, 4);
        // Then real-time arrivals: the 200 ms backlog goes down by one buffer a window.
        let mut now = ms(0);
        let mut ahead_at_end = Duration::ZERO;
        for _ in 0..(WINDOW * 12) {
            now += F;
            if let Slot::At(at) = t.place(now, F) {
                ahead_at_end = at.saturating_sub(now);
            }
        }
        assert!(ahead_at_end <= TARGET, "still {ahead_at_end:?} ahead");
        assert!(t.dropped >= 4 + 7, "walked back by dropping: {}", t.dropped);
    }

    #[test]
    fn a_machine_that_keeps_stalling_keeps_its_cushion_for_a_while() {
        let mut t = InputTimeline::default();
        let mut now = ms(0);
        for _ in 0..50 {
            t.place(now, F);
            now += F;
        }
        // A 150 ms hold-up: a gap, then the held-up audio at once, then real time.
        now += ms(150);
        for _ in 0..8 {
            assert!(matches!(t.place(now, F), Slot::At(_)));
        }
        assert_eq!(t.resyncs, 1);
        let ahead = |t: &mut InputTimeline, now: Duration| match t.place(now, F) {
            Slot::At(at) => at.saturating_sub(now),
            Slot::Drop => Duration::MAX,
        };
        let mut last = Duration::ZERO;
        for _ in 0..(WINDOW * 5) {
            now += F;
            last = ahead(&mut t, now);
        }
        // Five seconds later the cushion is still there (the hold-up is remembered) ...
        assert!(last >= ms(140), "cushion walked back to {last:?}");
        // ... so a second hold-up of the same length leaves no gap.
        now += ms(140);
        for _ in 0..7 {
            t.place(now, F);
        }
        assert_eq!(t.resyncs, 1, "the second hold-up was absorbed");
        // Without further hold-ups it goes back to the small delay.
        for _ in 0..(WINDOW * 30) {
            now += F;
            last = ahead(&mut t, now);
        }
        assert!(last <= TARGET, "still {last:?} ahead");
    }

    #[test]
    fn a_pause_restarts_from_now() {
        let mut t = InputTimeline::default();
        assert_eq!(t.place(ms(0), F), Slot::At(ms(0)));
        assert_eq!(t.place(ms(20), F), Slot::At(ms(20)));
        // Nothing for half a second (talk pause, or the stream was away).
        assert_eq!(t.place(ms(540), F), Slot::At(ms(540)));
        assert_eq!(t.resyncs, 1);
        // Within the slack it still follows on.
        assert_eq!(t.place(ms(569), F), Slot::At(ms(560)));
    }
}

//! Counters the player keeps while decoding: pure, so they are unit-tested without GStreamer.

use std::collections::VecDeque;

/// A bounded ring of recent latency samples (ms) with percentiles: memory stays fixed over hours.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<u32>,
    capacity: usize,
}

impl LatencyWindow {
    pub fn new(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&mut self, ms: u32) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(ms);
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The `p`-th percentile (0..=100, nearest rank) of the samples held, `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<u32> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<u32> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
        Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
    }
}

/// Checks that stamped frame numbers arrive in order: counts frames that went backwards and
/// frame numbers that were skipped (16-bit wrapping arithmetic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrameOrder {
    pub last: Option<u16>,
    pub out_of_order: u64,
    pub skipped: u64,
}

impl FrameOrder {
    pub fn observe(&mut self, frame: u16) {
        if let Some(last) = self.last {
            let step = frame.wrapping_sub(last);
            if step == 0 || step > u16::MAX / 2 {
                self.out_of_order += 1;
                return;
            }
            self.skipped += u64::from(step - 1);
        }
        self.last = Some(frame);
    }
}

/// Latency in ms from a capture time (Unix ms mod 2^32) to `now_unix_ms`, `None` when the
/// difference is negative or implausible (over a minute: a clock step or a bad stamp).
pub fn latency_ms(capture_ms: u32, now_unix_ms: u64) -> Option<u32> {
    let d = (now_unix_ms as u32).wrapping_sub(capture_ms);
    (d < 60_000).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_bounded_window() {
        let mut w = LatencyWindow::new(100);
        assert_eq!(w.percentile(50.0), None);
        for ms in 1..=200 {
            w.push(ms);
        }
        assert_eq!(w.len(), 100);
        assert_eq!(w.percentile(50.0), Some(150));
        assert_eq!(w.percentile(95.0), Some(195));
        assert_eq!(w.percentile(100.0), Some(200));
        assert_eq!(w.percentile(0.0), Some(101));
    }

    #[test]
    fn order_counts_gaps_and_reversals_across_wrap() {
        let mut o = FrameOrder::default();
        for f in [65534u16, 65535, 0, 2, 1, 3] {
            o.observe(f);
        }
        assert_eq!(o.skipped, 1);
        assert_eq!(o.out_of_order, 1);
        assert_eq!(o.last, Some(3));
    }

    #[test]
    fn latency_wraps_and_rejects_nonsense() {
        assert_eq!(latency_ms(u32::MAX - 4, (1u64 << 32) + 5), Some(10));
        assert_eq!(latency_ms(1000, 1030), Some(30));
        assert_eq!(latency_ms(1030, 1000), None);
    }
}

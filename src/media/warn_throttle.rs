//! [`WarnThrottle`]: keeps a repeating pipeline warning from flooding the log. An element that
//! warns on every buffer (a mixer's "clock problem", 180 a second seen under emulation) would
//! fill a Pi's SD card and bury everything else; the first of a kind is logged at once, repeats
//! within [`WarnThrottle::WINDOW`] are counted, and the next one after the window is logged
//! with that count. Sans-IO: time comes in as an argument.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Kinds of warning remembered at most (older ones are forgotten; a forgotten kind is simply
/// logged again the next time).
const MAX_KINDS: usize = 64;

#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    kinds: HashMap<String, Seen>,
}

#[derive(Debug)]
struct Seen {
    logged_at: Instant,
    suppressed: u64,
}

impl WarnThrottle {
    /// How long repeats of one warning stay quiet after it was logged.
    pub(crate) const WINDOW: Duration = Duration::from_secs(10);

    /// A warning of kind `key` happened at `now`: `Some(n)` when it is to be logged (`n`
    /// repeats were held back since it was last logged), `None` when it is held back.
    pub(crate) fn admit(&mut self, key: &str, now: Instant) -> Option<u64> {
        if let Some(seen) = self.kinds.get_mut(key) {
            if now.saturating_duration_since(seen.logged_at) < Self::WINDOW {
                seen.suppressed += 1;
                return None;
            }
            let held = seen.suppressed;
            seen.logged_at = now;
            seen.suppressed = 0;
            return Some(held);
        }
        if self.kinds.len() >= MAX_KINDS
            && let Some(oldest) = self
                .kinds
                .iter()
                .min_by_key(|(_, s)| s.logged_at)
                .map(|(k, _)| k.clone())
        {
            self.kinds.remove(&oldest);
        }
        self.kinds.insert(
            key.to_string(),
            Seen {
                logged_at: now,
                suppressed: 0,
            },
        );
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_held_back_and_counted_until_the_window_passes() {
        let t0 = Instant::now();
        let mut w = WarnThrottle::default();
        assert_eq!(w.admit("mixer: clock problem", t0), Some(0));
        for i in 1..=179 {
            let at = t0 + Duration::from_millis(5 * i);
            assert_eq!(w.admit("mixer: clock problem", at), None);
        }
        // Another kind is not held back by the first.
        assert_eq!(w.admit("sink: late", t0 + Duration::from_secs(1)), Some(0));
        let later = t0 + WarnThrottle::WINDOW;
        assert_eq!(w.admit("mixer: clock problem", later), Some(179));
        assert_eq!(
            w.admit("mixer: clock problem", later + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn the_number_of_kinds_remembered_is_bounded() {
        let t0 = Instant::now();
        let mut w = WarnThrottle::default();
        for i in 0..(MAX_KINDS as u64 + 10) {
            assert_eq!(
                w.admit(&format!("kind {i}"), t0 + Duration::from_millis(i)),
                Some(0)
            );
        }
        assert!(w.kinds.len() <= MAX_KINDS);
        // The newest kinds are still remembered.
        let last = format!("kind {}", MAX_KINDS as u64 + 9);
        assert_eq!(w.admit(&last, t0 + Duration::from_secs(1)), None);
    }
}

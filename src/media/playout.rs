//! Maps the sender's timestamps onto the player's running time: pure, unit-tested on plain
//! numbers.
//!
//! The engine passes each frame's pts derived from the sender's RTP timing (audio and video on
//! one timeline, aligned through RTCP sender reports). The first frame anchors an offset so
//! that it plays `delay` after it arrived; audio and video share that one offset, which is what
//! keeps them in sync. The offset then follows the arrivals so delay never creeps:
//! - a frame that arrives after its deadline is late; after `LATE_STREAK` late frames in a row
//!   of one track (audio or video: the other track's frames do not break the streak, else
//!   audio that is late while video is on time would be late for ever) the offset moves later
//!   by the worst lateness seen (a clock or route change);
//! - when every frame of a window of `WINDOW` arrived earlier than needed by more than
//!   `EXCESS` (a late frame starts a new window), the offset moves earlier by that excess. During the first `STARTUP` frames the
//!   windows are `FIRST_WINDOW` long and the whole excess goes at once (the first frame, a large
//!   keyframe, or a burst that waited while the player started, often sets the anchor too late;
//!   a one-off jump may drop a few pictures); after that, at most `MAX_STEP` at a time.

use std::time::Duration;

const LATE_STREAK: u32 = 8;
const WINDOW: u32 = 90;
const FIRST_WINDOW: u32 = 30;
const STARTUP: u64 = 300;
const EXCESS: i128 = 5_000_000;
const MAX_STEP: i128 = 10_000_000;

/// The two tracks of a stream; each has its own late streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video = 0,
    Audio = 1,
}

/// Where a frame goes on the player's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Running time at which the frame is to be shown or heard (before the sink's latency).
    pub running_time: Duration,
    /// Whether it arrived after its deadline.
    pub late: bool,
}

/// The sender-pts to running-time mapping for one remote stream (audio and video together).
#[derive(Debug, Clone)]
pub struct Playout {
    delay: i128,
    offset: Option<i128>,
    late_streak: [u32; 2],
    worst_late: [i128; 2],
    window_min_slack: i128,
    window_count: u32,
    placed: u64,
    /// How many times the offset was moved after the first anchor.
    pub adjustments: u64,
    /// Frames that arrived after their deadline.
    pub late_frames: u64,
}

impl Playout {
    /// `delay` is the jitter allowance: how long after its arrival the anchor frame plays.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay: delay.as_nanos() as i128,
            offset: None,
            late_streak: [0; 2],
            worst_late: [0; 2],
            window_min_slack: i128::MAX,
            window_count: 0,
            placed: 0,
            adjustments: 0,
            late_frames: 0,
        }
    }

    /// Changes the jitter allowance; the offset is kept (a larger delay makes every frame
    /// play that much later, a smaller one is walked back by the excess rule).
    pub fn set_delay(&mut self, delay: Duration) {
        self.delay = delay.as_nanos() as i128;
    }

    /// The jitter allowance.
    pub fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay as u64)
    }

    /// Forgets the anchor (a new stream or a sender restart).
    pub fn reset(&mut self) {
        *self = Self::new(Duration::from_nanos(self.delay as u64));
    }

    /// Places a frame of `track` with sender timestamp `pts` that arrived at running time `now`.
    pub fn place(&mut self, track: Track, pts: Duration, now: Duration) -> Placement {
        let t = track as usize;
        let (pts, now) = (pts.as_nanos() as i128, now.as_nanos() as i128);
        let Some(offset) = self.offset else {
            // The anchor: plays `delay` after its arrival, by definition on time.
            self.offset = Some(now - pts);
            return Placement {
                running_time: Duration::from_nanos(now.max(0) as u64),
                late: false,
            };
        };
        self.placed += 1;
        let startup = self.placed <= STARTUP;
        let at = (pts + offset).max(0);
        // Slack: how long before its deadline (at + delay) the frame arrived.
        let slack = at + self.delay - now;
        let late = slack < 0;
        if late {
            self.late_frames += 1;
            self.late_streak[t] += 1;
            self.worst_late[t] = self.worst_late[t].max(-slack);
            if self.late_streak[t] >= LATE_STREAK {
                self.offset = Some(offset + self.worst_late[t]);
                self.adjustments += 1;
                self.late_streak = [0; 2];
                self.worst_late = [0; 2];
            }
            // Not every frame of this window was early: no walking back on its account.
            self.window_min_slack = i128::MAX;
            self.window_count = 0;
        } else {
            self.late_streak[t] = 0;
            self.worst_late[t] = 0;
            self.window_min_slack = self.window_min_slack.min(slack);
            self.window_count += 1;
            let window = if startup { FIRST_WINDOW } else { WINDOW };
            if self.window_count >= window {
                let excess = self.window_min_slack - self.delay;
                if excess > EXCESS {
                    let step = if startup {
                        excess
                    } else {
                        excess.min(MAX_STEP)
                    };
                    self.offset = Some(offset - step);
                    self.adjustments += 1;
                }
                self.window_min_slack = i128::MAX;
                self.window_count = 0;
            }
        }
        Placement {
            running_time: Duration::from_nanos(at as u64),
            late,
        }
    }

    /// The current offset (running time minus sender pts), once anchored.
    pub fn offset_ns(&self) -> Option<i128> {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn first_frame_anchors_and_steady_frames_keep_the_offset() {
        let mut p = Playout::new(ms(40));
        let first = p.place(Track::Video, ms(5000), ms(100));
        assert_eq!(
            first,
            Placement {
                running_time: ms(100),
                late: false
            }
        );
        for i in 1..50u64 {
            let pl = p.place(Track::Video, ms(5000 + i * 33), ms(100 + i * 33 + 3));
            assert_eq!(pl.running_time, ms(100 + i * 33));
            assert!(!pl.late);
        }
        assert_eq!(p.adjustments, 0);
    }

    #[test]
    fn a_late_frame_is_flagged_and_a_late_streak_moves_the_offset_later() {
        let mut p = Playout::new(ms(20));
        p.place(Track::Video, ms(0), ms(1000));
        // The path got 50 ms slower: every frame is 30 ms past its deadline.
        for i in 1..=LATE_STREAK as u64 {
            assert!(
                p.place(Track::Video, ms(i * 33), ms(1000 + i * 33 + 50))
                    .late
            );
        }
        assert_eq!(p.adjustments, 1);
        let pl = p.place(Track::Video, ms(300), ms(1000 + 300 + 50));
        assert!(!pl.late);
        assert_eq!(pl.running_time, ms(1000 + 300 + 30));
        assert_eq!(p.late_frames, u64::from(LATE_STREAK));
    }

    #[test]
    fn a_slow_anchor_is_walked_back_so_delay_does_not_creep() {
        let mut p = Playout::new(ms(20));
        // The first frame (a big keyframe) arrived 40 ms later than the frames after it.
        p.place(Track::Video, ms(0), ms(1040));
        for i in 1..=STARTUP {
            p.place(Track::Video, ms(i * 33), ms(1000 + i * 33));
        }
        // After start-up, a slow drift (the path got 40 ms faster) is walked back in steps.
        let mut last = None;
        for i in STARTUP + 1..STARTUP + 2000 {
            last = Some(p.place(Track::Video, ms(i * 33), ms(1000 + i * 33 - 40)));
        }
        // Walked back in steps to where the steady frames arrive (within EXCESS).
        let i = STARTUP + 1999;
        let lag = last.unwrap().running_time.as_nanos() as i128
            - (1000 + i * 33 - 40) as i128 * MS as i128;
        assert!(lag.abs() <= EXCESS, "lag {lag}");
        assert!(p.adjustments >= 5, "{}", p.adjustments);
        assert_eq!(p.late_frames, 0);
    }

    #[test]
    fn a_late_anchor_is_corrected_at_once_after_the_first_window() {
        let mut p = Playout::new(ms(20));
        p.place(Track::Video, ms(0), ms(1300));
        let mut last = None;
        for i in 1..=u64::from(FIRST_WINDOW) + 1 {
            last = Some(p.place(Track::Video, ms(i * 33), ms(1000 + i * 33)));
        }
        assert_eq!(p.adjustments, 1);
        assert_eq!(
            last.unwrap().running_time,
            ms(1000 + (u64::from(FIRST_WINDOW) + 1) * 33)
        );
    }

    #[test]
    fn late_audio_between_on_time_video_moves_the_offset() {
        // Audio arrives 60 ms behind video of the same pts (a slow audio path): with one
        // streak for both tracks every on-time picture broke the audio's streak and the audio
        // was dropped as late for ever, while video windows walked the offset earlier still.
        let mut p = Playout::new(ms(20));
        p.place(Track::Video, ms(0), ms(1000));
        let mut audio_late = Vec::new();
        for i in 1..=600u64 {
            let t = i * 10;
            if i % 3 == 0 {
                p.place(Track::Video, ms(t), ms(1000 + t));
            }
            let a = p.place(Track::Audio, ms(t), ms(1000 + t + 60));
            audio_late.push(a.late);
        }
        assert!(audio_late[..8].iter().all(|l| *l), "{audio_late:?}");
        assert!(
            audio_late[20..].iter().all(|l| !l),
            "audio stays late: {} of {}",
            audio_late[20..].iter().filter(|l| **l).count(),
            audio_late.len() - 20
        );
        assert!(p.adjustments <= 2, "{}", p.adjustments);
    }

    #[test]
    fn a_window_with_a_late_frame_does_not_walk_the_offset_back() {
        let mut p = Playout::new(ms(20));
        p.place(Track::Video, ms(0), ms(1000));
        // Every frame but one arrives 100 ms early; the late one says the margin is needed.
        for i in 1..=u64::from(FIRST_WINDOW) * 4 {
            let t = i * 33;
            let arrival = if i % 20 == 10 {
                1000 + t + 25
            } else {
                1000 + t - 100
            };
            p.place(Track::Video, ms(t), ms(arrival));
        }
        assert_eq!(p.adjustments, 0);
    }

    #[test]
    fn reset_forgets_the_anchor() {
        let mut p = Playout::new(ms(20));
        p.place(Track::Video, ms(10), ms(10));
        p.reset();
        assert_eq!(p.offset_ns(), None);
        assert_eq!(p.place(Track::Video, ms(0), ms(500)).running_time, ms(500));
    }
}

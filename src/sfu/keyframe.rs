//! The keyframe cache of one published video track: the packets of the most recent keyframe
//! and, while they fit, of the frames that follow it (the group of pictures so far).
//!
//! A new player gets the whole cache at once: with the complete GOP it can decode up to the
//! live edge without asking the publisher for anything. When the GOP outgrew the cache only the
//! keyframe is kept: the player gets it at once (a picture appears) and then waits for the next
//! keyframe, which the SFU asks the publisher for.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use str0m::media::Pt;
use str0m::rtp::ExtensionValues;

/// One forwarded RTP packet, as the SFU keeps it (header fields + shared payload).
#[derive(Debug, Clone)]
pub struct CachedPacket {
    pub seq: u64,
    pub pt: Pt,
    pub time: u32,
    pub marker: bool,
    pub wallclock: Instant,
    pub exts: ExtensionValues,
    pub payload: Arc<[u8]>,
}

/// What a new player can be given.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum CacheState {
    /// No keyframe seen yet (or the stream just restarted).
    Empty,
    /// The keyframe and every packet since: the player can follow on seamlessly.
    FullGop,
    /// Only the keyframe: the player must wait for the next one after it.
    KeyframeOnly,
}

#[derive(Debug)]
pub struct KeyframeCache {
    max_packets: usize,
    /// RTP timestamp of the cached keyframe.
    keyframe_time: Option<u32>,
    /// Packets of the keyframe itself (same RTP timestamp), sorted by seq.
    keyframe: Vec<CachedPacket>,
    /// Packets after the keyframe, sorted by seq, while the GOP fits.
    tail: Vec<CachedPacket>,
    overflowed: bool,
    /// The last few video packets, whatever they were.
    recent: VecDeque<CachedPacket>,
}

/// How many recent packets are kept to reassemble a keyframe that arrived out of order.
const RECENT: usize = 64;

impl KeyframeCache {
    pub fn new(max_packets: usize) -> Self {
        KeyframeCache {
            max_packets: max_packets.max(1),
            keyframe_time: None,
            keyframe: Vec::new(),
            tail: Vec::new(),
            overflowed: false,
            recent: VecDeque::with_capacity(RECENT),
        }
    }

    pub fn state(&self) -> CacheState {
        match (self.keyframe.is_empty(), self.overflowed) {
            (true, _) => CacheState::Empty,
            (false, false) => CacheState::FullGop,
            (false, true) => CacheState::KeyframeOnly,
        }
    }

    pub fn clear(&mut self) {
        self.keyframe_time = None;
        self.keyframe.clear();
        self.tail.clear();
        self.overflowed = false;
    }

    /// Records a forwarded video packet. `starts_keyframe` is the H.264 inspection result.
    ///
    /// Packets may arrive out of order (loss repaired by RTX): packets of the keyframe that
    /// arrive before its first packet are kept in a short history and join it, and packets of
    /// the keyframe's frame that arrive after it started are inserted in order.
    pub fn push(&mut self, p: &CachedPacket, starts_keyframe: bool) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(p.clone());

        if starts_keyframe && self.keyframe_time != Some(p.time) {
            // Retransmissions of an older keyframe must not replace a newer one.
            if let Some(first) = self.keyframe.first()
                && p.seq < first.seq
            {
                return;
            }
            self.clear();
            self.keyframe_time = Some(p.time);
            let near =
                |q: &CachedPacket| q.time == p.time && q.seq.abs_diff(p.seq) <= RECENT as u64;
            for q in self.recent.iter().filter(|q| near(q)) {
                insert_sorted(&mut self.keyframe, q);
            }
            return;
        }
        let Some(kf_time) = self.keyframe_time else {
            return;
        };
        let Some(first) = self.keyframe.first() else {
            return;
        };
        if p.time == kf_time {
            // Another packet of the keyframe, possibly one that precedes the first we saw.
            if self.keyframe.len() < self.max_packets && p.seq + RECENT as u64 >= first.seq {
                insert_sorted(&mut self.keyframe, p);
            }
            return;
        }
        if p.seq < first.seq {
            return;
        }
        if self.overflowed {
            return;
        }
        if self.keyframe.len() + self.tail.len() >= self.max_packets {
            self.overflowed = true;
            self.tail = Vec::new();
            return;
        }
        insert_sorted(&mut self.tail, p);
    }

    /// RTP timestamp of the cached keyframe.
    pub fn keyframe_time(&self) -> Option<u32> {
        self.keyframe_time
    }

    /// The packets to give a new player, in order: the keyframe, then the GOP tail when whole.
    pub fn packets(&self) -> impl Iterator<Item = &CachedPacket> {
        self.keyframe.iter().chain(self.tail.iter())
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.keyframe.len() + self.tail.len()
    }
}

fn insert_sorted(v: &mut Vec<CachedPacket>, p: &CachedPacket) {
    match v.binary_search_by_key(&p.seq, |c| c.seq) {
        Ok(_) => {} // duplicate (e.g. a retransmission of a packet we already hold)
        Err(i) => v.insert(i, p.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(seq: u64, time: u32) -> CachedPacket {
        CachedPacket {
            seq,
            pt: 96.into(),
            time,
            marker: false,
            wallclock: Instant::now(),
            exts: ExtensionValues::default(),
            payload: Arc::from(&[1u8][..]),
        }
    }

    #[test]
    fn keeps_gop_until_it_overflows_then_only_the_keyframe() {
        let mut c = KeyframeCache::new(4);
        c.push(&pkt(1, 0), false);
        assert_eq!(c.state(), CacheState::Empty);
        c.push(&pkt(10, 100), true);
        c.push(&pkt(12, 100), false);
        c.push(&pkt(11, 100), false);
        c.push(&pkt(13, 200), false);
        assert_eq!(c.state(), CacheState::FullGop);
        let seqs: Vec<u64> = c.packets().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![10, 11, 12, 13]);
        c.push(&pkt(14, 300), false);
        assert_eq!(c.state(), CacheState::KeyframeOnly);
        assert_eq!(c.len(), 3);
        c.push(&pkt(20, 400), true);
        assert_eq!(c.state(), CacheState::FullGop);
        assert_eq!(c.len(), 1);
        // the first packet of a keyframe arriving after the rest of it joins it
        let mut r = KeyframeCache::new(100);
        r.push(&pkt(51, 700), false);
        r.push(&pkt(52, 700), false);
        r.push(&pkt(53, 800), false);
        r.push(&pkt(50, 700), true);
        let seqs: Vec<u64> = r.packets().map(|p| p.seq).collect();
        assert_eq!(seqs, vec![50, 51, 52]);
        // and one arriving after the keyframe started is inserted before it
        let mut r = KeyframeCache::new(100);
        r.push(&pkt(61, 900), true);
        r.push(&pkt(60, 900), true);
        assert_eq!(r.packets().map(|p| p.seq).collect::<Vec<_>>(), vec![60, 61]);
        // a late retransmission of the old keyframe does not replace the new one
        c.push(&pkt(10, 100), true);
        assert_eq!(c.packets().next().map(|p| p.seq), Some(20));
    }
}

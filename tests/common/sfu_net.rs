//! A simulated network on virtual time: the SFU, str0m test clients, datagrams in flight with
//! per-link loss and delay (deterministic RNG), signalling delivered instantly, and media
//! sources that publish at a fixed rate.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use roomcam::protocol::{ErrorCode, ServerMessage};
use roomcam::room::{MediaCommand, SessionId, StreamKey};
use roomcam::sfu::{Sfu, SfuConfig, SfuOutput};

use super::rtc_client::RtcClient;

/// Loss and delay of one client's link, per direction.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// client -> SFU
    pub up_loss: f64,
    /// SFU -> client
    pub down_loss: f64,
    pub delay: Duration,
}

impl Default for Link {
    fn default() -> Self {
        Link {
            up_loss: 0.0,
            down_loss: 0.0,
            delay: Duration::from_millis(10),
        }
    }
}

/// A media source: one publishing client, sending video frames and Opus at a fixed rate.
#[derive(Debug, Clone)]
pub struct MediaPlan {
    pub client: usize,
    pub packets_per_frame: u16,
    pub packet_size: usize,
    pub frame_interval: Duration,
    /// Force a keyframe every N frames (None: only the first and on request).
    pub gop: Option<u32>,
    pub next_video: Instant,
    pub next_audio: Instant,
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

pub struct Net {
    pub now: Instant,
    pub start: Instant,
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub clients: Vec<RtcClient>,
    pub links: HashMap<SocketAddr, Link>,
    pub media: Vec<MediaPlan>,
    pub signals: Vec<(SessionId, ServerMessage)>,
    pub failures: Vec<(SessionId, ErrorCode)>,
    in_flight: Vec<InFlight>,
    sfu_timeout: Instant,
    rng: u64,
    /// Datagrams the SFU sent, per destination.
    pub sent_to: HashMap<SocketAddr, u64>,
    /// Wall time spent inside the SFU's calls (for the benchmark).
    pub sfu_time: Duration,
    /// What the "adapter" passes as the datagrams' destination (default: the SFU's address).
    pub receive_destination: Option<SocketAddr>,
}

pub const APP: u32 = 1;

pub fn key(stream: &str) -> StreamKey {
    StreamKey {
        app_id: APP,
        stream_id: stream.to_string(),
    }
}

impl Net {
    pub fn new(config: SfuConfig) -> Self {
        let now = Instant::now();
        let sfu_addr: SocketAddr = (Ipv4Addr::new(10, 0, 0, 1), 5000).into();
        let config = SfuConfig {
            candidates: vec![sfu_addr],
            ..config
        };
        Net {
            now,
            start: now,
            sfu: Sfu::new(config),
            sfu_addr,
            clients: Vec::new(),
            links: HashMap::new(),
            media: Vec::new(),
            signals: Vec::new(),
            failures: Vec::new(),
            in_flight: Vec::new(),
            sfu_timeout: now,
            rng: 0x9e37_79b9_7f4a_7c15,
            sent_to: HashMap::new(),
            sfu_time: Duration::ZERO,
            receive_destination: None,
        }
    }

    /// Adds a client; its session id is its index + 1.
    pub fn add_client(&mut self) -> usize {
        self.add_client_with(|c| c)
    }

    pub fn add_client_with(
        &mut self,
        f: impl FnOnce(str0m::RtcConfig) -> str0m::RtcConfig,
    ) -> usize {
        let i = self.clients.len();
        let addr: SocketAddr = (Ipv4Addr::new(10, 0, 1, (i + 1) as u8), 40_000 + i as u16).into();
        self.clients.push(RtcClient::with_config(
            SessionId(i as u64 + 1),
            addr,
            self.now,
            f,
        ));
        self.links.insert(addr, Link::default());
        i
    }

    pub fn session(&self, client: usize) -> SessionId {
        self.clients[client].session
    }

    pub fn link_mut(&mut self, client: usize) -> &mut Link {
        let addr = self.clients[client].addr;
        self.links.entry(addr).or_default()
    }

    fn random(&mut self) -> f64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn command(&mut self, cmd: MediaCommand) {
        let t = Instant::now();
        self.sfu.handle_command(self.now, cmd);
        self.sfu_time += t.elapsed();
        self.drain_sfu();
    }

    /// Publishes `stream` from `client` (publish command, then the offer) and applies the answer.
    pub fn publish(&mut self, client: usize, stream: &str) {
        let session = self.session(client);
        let (mids, sdp) = self.clients[client].offer_publish();
        self.command(MediaCommand::Publish {
            session,
            stream: key(stream),
            mids,
        });
        self.command(MediaCommand::Offer { session, sdp });
    }

    /// Plays `stream` on `client` (play command, then the offer).
    pub fn play(&mut self, client: usize, stream: &str) {
        let session = self.session(client);
        let (mids, sdp) = self.clients[client].offer_play();
        self.command(MediaCommand::Play {
            session,
            stream: key(stream),
            mids,
        });
        self.command(MediaCommand::Offer { session, sdp });
    }

    /// Starts a media source on `client`: 30 fps video of `packets_per_frame` x `size` bytes and
    /// 50 packets/s of Opus.
    pub fn start_media(
        &mut self,
        client: usize,
        packets_per_frame: u16,
        size: usize,
        gop: Option<u32>,
    ) {
        self.media.push(MediaPlan {
            client,
            packets_per_frame,
            packet_size: size,
            frame_interval: Duration::from_micros(33_333),
            gop,
            next_video: self.now,
            next_audio: self.now,
        });
    }

    pub fn stop_media(&mut self) {
        self.media.clear();
    }

    fn drain_sfu(&mut self) {
        loop {
            let t = Instant::now();
            let out = self.sfu.poll_output();
            self.sfu_time += t.elapsed();
            match out {
                SfuOutput::Timeout(t) => {
                    self.sfu_timeout = t;
                    return;
                }
                SfuOutput::Transmit {
                    source,
                    destination,
                    contents,
                    ..
                } => {
                    *self.sent_to.entry(destination).or_default() += 1;
                    let link = self.links.get(&destination).copied().unwrap_or_default();
                    if link.down_loss > 0.0 && self.random() < link.down_loss {
                        continue;
                    }
                    self.in_flight.push(InFlight {
                        at: self.now + link.delay,
                        from: source,
                        to: destination,
                        data: contents,
                    });
                }
                SfuOutput::Signal { session, message } => {
                    let idx = (session.0 - 1) as usize;
                    match &message {
                        ServerMessage::Answer { sdp } => {
                            if let Some(c) = self.clients.get_mut(idx) {
                                c.accept_answer(sdp);
                                c.next_timeout = self.now;
                            }
                        }
                        ServerMessage::Candidate { candidate, .. } => {
                            if let Some(c) = self.clients.get_mut(idx) {
                                c.add_remote_candidate(candidate);
                            }
                        }
                        _ => {}
                    }
                    self.signals.push((session, message));
                }
                SfuOutput::SessionFailed { session, code } => self.failures.push((session, code)),
            }
        }
    }

    fn drain_client(&mut self, i: usize) {
        let now = self.now;
        let out = self.clients[i].poll(now);
        let addr = self.clients[i].addr;
        let link = self.links.get(&addr).copied().unwrap_or_default();
        for (to, data) in out {
            if link.up_loss > 0.0 && self.random() < link.up_loss {
                continue;
            }
            self.in_flight.push(InFlight {
                at: now + link.delay,
                from: addr,
                to,
                data,
            });
        }
    }

    /// Injects a raw datagram to the SFU now.
    pub fn inject(&mut self, from: SocketAddr, data: &[u8]) {
        self.sfu.handle_receive(self.now, from, self.sfu_addr, data);
        self.drain_sfu();
    }

    /// Runs the simulation for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.step(end);
        }
    }

    /// Runs until `f` is true or `limit` passes; returns whether `f` became true.
    pub fn run_until(&mut self, limit: Duration, mut f: impl FnMut(&Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if f(self) {
                return true;
            }
            self.step(end);
        }
        f(self)
    }

    fn step(&mut self, end: Instant) {
        let mut next = end.min(self.sfu_timeout);
        for c in &self.clients {
            next = next.min(c.next_timeout);
        }
        for f in &self.in_flight {
            next = next.min(f.at);
        }
        for m in &self.media {
            next = next.min(m.next_video).min(m.next_audio);
        }
        // Time always moves (str0m may ask for "now" again).
        self.now = next.max(self.now + Duration::from_micros(50));
        let now = self.now;

        // Deliver datagrams due.
        // Keep the send order of datagrams due at the same time (UDP on one path rarely reorders).
        let (mut due, rest): (Vec<InFlight>, Vec<InFlight>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|d| d.at <= now);
        self.in_flight = rest;
        due.sort_by_key(|d| d.at);
        let mut touched = vec![false; self.clients.len()];
        for d in due {
            if d.to == self.sfu_addr {
                let t = Instant::now();
                let to = self.receive_destination.unwrap_or(d.to);
                self.sfu.handle_receive(now, d.from, to, &d.data);
                self.sfu_time += t.elapsed();
                self.drain_sfu();
            } else if let Some(ci) = self.clients.iter().position(|c| c.addr == d.to) {
                self.clients[ci].handle_receive(now, d.from, &d.data);
                // str0m (RTP mode) holds one received packet until polled: poll each time.
                self.drain_client(ci);
            }
        }
        // Media.
        for mi in 0..self.media.len() {
            let m = self.media[mi].clone();
            if m.next_video <= now {
                let c = &mut self.clients[m.client];
                let force = m.gop.is_some_and(|g| c.source.frame.is_multiple_of(g));
                c.send_video_frame(now, m.packets_per_frame, m.packet_size, force);
                self.media[mi].next_video += m.frame_interval;
                touched[m.client] = true;
            }
            if m.next_audio <= now {
                self.clients[m.client].send_audio_frame(now);
                self.media[mi].next_audio += Duration::from_millis(20);
                touched[m.client] = true;
            }
        }
        // Timeouts.
        for (ci, touched) in touched.into_iter().enumerate() {
            if self.clients[ci].next_timeout <= now {
                self.clients[ci].handle_timeout(now);
                self.drain_client(ci);
            } else if touched {
                self.drain_client(ci);
            }
        }
        if self.sfu_timeout <= now {
            let t = Instant::now();
            self.sfu.handle_timeout(now);
            self.sfu_time += t.elapsed();
        }
        self.drain_sfu();
    }

    pub fn errors_for(&self, client: usize) -> Vec<ErrorCode> {
        let s = self.session(client);
        self.signals
            .iter()
            .filter(|(sid, _)| *sid == s)
            .filter_map(|(_, m)| match m {
                ServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

/// Checks what one player received of the video: every payload intact, and from the first
/// received packet on: sequence numbers gap-free, a constant offset to the publisher's, RTP
/// timestamps exactly the publisher's, every frame complete. Returns the number of frames.
pub fn check_video(c: &RtcClient) -> usize {
    check_video_with(c, false)
}

/// Like [`check_video`]; with `allow_skips` the player may have skipped whole frames of the
/// publisher's (it waited for a keyframe), but its own sequence stays gap-free.
pub fn check_video_with(c: &RtcClient, allow_skips: bool) -> usize {
    check_video_impl(c, allow_skips, 0)
}

/// Like [`check_video_with`] (skips allowed) for the frames from `from_frame` on.
pub fn check_video_from(c: &RtcClient, from_frame: u32) -> usize {
    check_video_impl(c, true, from_frame)
}

fn check_video_impl(c: &RtcClient, allow_skips: bool, from_frame: u32) -> usize {
    let video: Vec<&super::rtc_client::Received> = c
        .video()
        .into_iter()
        .filter(|r| r.tag.is_none_or(|t| t.frame >= from_frame))
        .collect();
    assert!(!video.is_empty(), "no video received");
    let mut seen: Vec<(u64, u32, super::rtc_client::Tag)> = Vec::new();
    for r in &video {
        let tag = r
            .tag
            .unwrap_or_else(|| panic!("damaged payload at seq {}", r.seq));
        assert_eq!(tag.kind, super::rtc_client::KIND_VIDEO);
        assert_eq!(
            r.time,
            tag.frame.wrapping_mul(super::rtc_client::VIDEO_TICKS),
            "RTP timestamp changed"
        );
        assert_eq!(r.marker, tag.index + 1 == tag.count, "marker bit changed");
        seen.push((r.seq, r.time, tag));
    }
    seen.sort_by_key(|s| s.0);
    seen.dedup_by_key(|s| s.0);
    for w in seen.windows(2) {
        assert_eq!(
            w[1].0,
            w[0].0 + 1,
            "gap in forwarded sequence numbers after {}",
            w[0].0
        );
        let step = w[1].2.src_seq.wrapping_sub(w[0].2.src_seq);
        if allow_skips {
            assert!(
                (1..1_000_000).contains(&step),
                "forwarded packets out of the publisher's order"
            );
        } else {
            assert_eq!(
                step, 1,
                "forwarded packets do not follow the publisher's order"
            );
        }
    }
    // Whole frames: each frame's packets all present (the last frame may be in flight).
    let mut frames: HashMap<u32, (u16, u16)> = HashMap::new();
    for (_, _, t) in &seen {
        let e = frames.entry(t.frame).or_insert((0, t.count));
        e.0 += 1;
    }
    let last = frames.keys().max().copied().unwrap_or(0);
    for (f, (got, count)) in &frames {
        if *f != last {
            assert_eq!(got, count, "frame {f} incomplete");
            let _ = allow_skips;
        }
    }
    frames.len()
}

/// Checks the audio a player received: intact, gap-free, timestamps kept.
pub fn check_audio(c: &RtcClient) -> usize {
    let mut audio: Vec<&super::rtc_client::Received> = c.audio();
    assert!(!audio.is_empty(), "no audio received");
    audio.sort_by_key(|r| r.seq);
    for r in &audio {
        let tag = r.tag.expect("audio payload damaged");
        assert_eq!(
            r.time,
            tag.frame.wrapping_mul(super::rtc_client::AUDIO_TICKS)
        );
    }
    for w in audio.windows(2) {
        assert_eq!(w[1].seq, w[0].seq + 1, "gap in audio");
    }
    audio.len()
}

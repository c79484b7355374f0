//! A WebRTC test client on str0m (RTP mode) that talks to the SFU like a browser would: it
//! always offers, publishes H.264 + Opus with known payloads, and plays.
//!
//! Payloads: every RTP payload starts like a real H.264 NAL unit (STAP-A with SPS+PPS, FU-A of
//! an IDR slice for keyframes; FU-A of a non-IDR slice otherwise) or an Opus-ish byte, and ends
//! with a 16-byte tag: b"RC", kind, frame number, packet index, packets in frame, the
//! publisher's sequence number, and a checksum over the whole payload, so a receiver can
//! check integrity, completeness and the mapping of sequence numbers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcam::protocol::TrackMids;
use roomcam::room::SessionId;
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

pub const TAG_LEN: usize = 16;
pub const KIND_VIDEO: u8 = 1;
pub const KIND_AUDIO: u8 = 2;
/// 90 kHz ticks per video frame (30 fps).
pub const VIDEO_TICKS: u32 = 3000;
/// 48 kHz ticks per 20 ms Opus frame.
pub const AUDIO_TICKS: u32 = 960;

/// What the tag at the end of a payload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub kind: u8,
    pub frame: u32,
    pub index: u16,
    pub count: u16,
    pub src_seq: u32,
}

/// Builds a payload of `size` bytes (at least the header + tag) starting with `head`.
pub fn make_payload(head: &[u8], size: usize, tag: Tag) -> Vec<u8> {
    let size = size.max(head.len() + TAG_LEN);
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(head);
    let fill = size - head.len() - TAG_LEN;
    v.extend((0..fill).map(|i| (i as u32).wrapping_mul(31).wrapping_add(tag.src_seq) as u8));
    v.extend_from_slice(b"RC");
    v.push(tag.kind);
    v.extend_from_slice(&tag.frame.to_be_bytes());
    v.extend_from_slice(&tag.index.to_be_bytes());
    v.extend_from_slice(&tag.count.to_be_bytes());
    v.extend_from_slice(&tag.src_seq.to_be_bytes());
    let sum = v.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    v.push(sum);
    v
}

/// Reads and verifies a payload's tag; None when it is damaged.
pub fn read_tag(p: &[u8]) -> Option<Tag> {
    if p.len() < TAG_LEN {
        return None;
    }
    let (body, sum) = p.split_at(p.len() - 1);
    if body.iter().fold(0u8, |a, b| a.wrapping_add(*b)) != sum[0] {
        return None;
    }
    let t = &p[p.len() - TAG_LEN..];
    if &t[0..2] != b"RC" {
        return None;
    }
    let head_fill = p.len() - TAG_LEN;
    let src_seq = u32::from_be_bytes([t[11], t[12], t[13], t[14]]);
    // the filler must be what make_payload wrote
    let head_len = head_len(p);
    for (i, b) in p[head_len..head_fill].iter().enumerate() {
        if *b != (i as u32).wrapping_mul(31).wrapping_add(src_seq) as u8 {
            return None;
        }
    }
    Some(Tag {
        kind: t[2],
        frame: u32::from_be_bytes([t[3], t[4], t[5], t[6]]),
        index: u16::from_be_bytes([t[7], t[8]]),
        count: u16::from_be_bytes([t[9], t[10]]),
        src_seq,
    })
}

/// SPS/IDR as a single NAL, in a STAP-A, or as an FU-A start.
pub fn is_keyframe_start(p: &[u8]) -> bool {
    match p.first().map(|b| b & 0x1f) {
        Some(5) | Some(7) => true,
        Some(24) => p.get(3).is_some_and(|b| b & 0x1f == 7 || b & 0x1f == 5),
        Some(28) => p.get(1).is_some_and(|b| b & 0x80 != 0 && b & 0x1f == 5),
        _ => false,
    }
}

const STAP_SPS_PPS: &[u8] = &[0x78, 0, 4, 0x67, 0x42, 0xe0, 0x1f, 0, 2, 0x68, 0xce];

fn head_len(p: &[u8]) -> usize {
    match p.first().map(|b| b & 0x1f) {
        Some(24) => STAP_SPS_PPS.len(),
        Some(28) => 2,
        _ => 1,
    }
}

/// One received RTP packet.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MediaKind,
    pub seq: u64,
    pub time: u32,
    pub marker: bool,
    pub ssrc: u32,
    pub tag: Option<Tag>,
    /// The payload begins a keyframe (SPS/IDR, as the SFU detects it).
    pub keyframe_start: bool,
    /// The latest sender report of this packet's stream: (NTP time, RTP time).
    pub sender_report: Option<(std::time::SystemTime, u64)>,
    pub at: Instant,
}

/// A publishing source's state.
#[derive(Debug, Default)]
pub struct Source {
    pub video_mid: Option<Mid>,
    pub audio_mid: Option<Mid>,
    pub video_seq: u64,
    pub audio_seq: u64,
    pub frame: u32,
    pub audio_frame: u32,
    pub keyframe_requested: bool,
    pub keyframes_sent: u32,
}

pub struct RtcClient {
    pub session: SessionId,
    pub addr: SocketAddr,
    pub rtc: Rtc,
    pub next_timeout: Instant,
    pending: Option<SdpPendingOffer>,
    pub received: Vec<Received>,
    pub connected: bool,
    pub source: Source,
    /// Mids this client plays, and their kind.
    pub play_mids: Vec<(Mid, MediaKind)>,
    pub keyframe_requests_seen: u32,
    /// REMB values (bits/s) the publisher received.
    pub rembs: Vec<u64>,
    /// Audio is stamped this much earlier than video of the same instant (the capture offset
    /// the publisher's sender reports then state).
    pub audio_wallclock_lead: Duration,
}

impl RtcClient {
    pub fn new(session: SessionId, addr: SocketAddr, now: Instant) -> Self {
        Self::with_config(session, addr, now, |c| c)
    }

    pub fn with_config(
        session: SessionId,
        addr: SocketAddr,
        now: Instant,
        f: impl FnOnce(RtcConfig) -> RtcConfig,
    ) -> Self {
        let config = f(Rtc::builder()
            .set_rtp_mode(true)
            .enable_bwe(Some(str0m::bwe::Bitrate::kbps(2500))));
        let mut rtc = config.build(now);
        let cand = Candidate::host(addr, "udp").expect("host candidate");
        rtc.add_local_candidate(cand);
        RtcClient {
            session,
            addr,
            rtc,
            next_timeout: now,
            pending: None,
            received: Vec::new(),
            connected: false,
            source: Source {
                // start sequence numbers close to the 16-bit wrap, to exercise rollover
                video_seq: 65_000,
                audio_seq: 65_300,
                ..Default::default()
            },
            play_mids: Vec::new(),
            keyframe_requests_seen: 0,
            rembs: Vec::new(),
            audio_wallclock_lead: Duration::ZERO,
        }
    }

    /// Adds sendonly video + audio and returns the mids and the SDP offer.
    pub fn offer_publish(&mut self) -> (TrackMids, String) {
        let mut api = self.rtc.sdp_api();
        let v = api.add_media(
            MediaKind::Video,
            Direction::SendOnly,
            Some("cam".into()),
            None,
            None,
        );
        let a = api.add_media(
            MediaKind::Audio,
            Direction::SendOnly,
            Some("cam".into()),
            None,
            None,
        );
        let (offer, pending) = api.apply().expect("changes");
        self.pending = Some(pending);
        self.source.video_mid = Some(v);
        self.source.audio_mid = Some(a);
        let mids = TrackMids {
            video: Some(v.to_string()),
            audio: Some(a.to_string()),
        };
        (mids, offer.to_sdp_string())
    }

    /// Adds recvonly video + audio and returns the mids and the SDP offer.
    pub fn offer_play(&mut self) -> (TrackMids, String) {
        let mut api = self.rtc.sdp_api();
        let v = api.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
        let a = api.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
        let (offer, pending) = api.apply().expect("changes");
        self.pending = Some(pending);
        self.play_mids.push((v, MediaKind::Video));
        self.play_mids.push((a, MediaKind::Audio));
        let mids = TrackMids {
            video: Some(v.to_string()),
            audio: Some(a.to_string()),
        };
        (mids, offer.to_sdp_string())
    }

    pub fn accept_answer(&mut self, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("answer parses");
        let Some(pending) = self.pending.take() else {
            return; // an offer made outside this helper
        };
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .expect("answer accepted");
    }

    pub fn add_remote_candidate(&mut self, sdp: &str) {
        if let Ok(c) = Candidate::from_sdp_string(sdp) {
            self.rtc.add_remote_candidate(c);
        }
    }

    fn pt_for(&self, mid: Mid, codec: Codec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let remote = media.remote_pts();
        self.rtc
            .codec_config()
            .params()
            .iter()
            .find(|p| {
                remote.contains(&p.pt())
                    && p.spec().codec == codec
                    && (codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
            })
            .map(|p| p.pt())
    }

    /// Writes one video frame of `packets` packets of `size` bytes. A keyframe when asked
    /// (`force_keyframe`), on the first frame, or when the SFU requested one.
    pub fn send_video_frame(
        &mut self,
        now: Instant,
        packets: u16,
        size: usize,
        force_keyframe: bool,
    ) {
        let Some(mid) = self.source.video_mid else {
            return;
        };
        let Some(pt) = self.pt_for(mid, Codec::H264) else {
            return;
        };
        let key = force_keyframe || self.source.frame == 0 || self.source.keyframe_requested;
        if key {
            self.source.keyframe_requested = false;
            self.source.keyframes_sent += 1;
        }
        let frame = self.source.frame;
        self.source.frame += 1;
        let time = frame.wrapping_mul(VIDEO_TICKS);
        let count = packets.max(2);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        for i in 0..count {
            let seq = self.source.video_seq;
            self.source.video_seq += 1;
            let tag = Tag {
                kind: KIND_VIDEO,
                frame,
                index: i,
                count,
                src_seq: seq as u32,
            };
            let nal = if key { 5u8 } else { 1u8 };
            let payload = if key && i == 0 {
                make_payload(STAP_SPS_PPS, size, tag)
            } else {
                let first_fu = if key { i == 1 } else { i == 0 };
                let mut fu = nal;
                if first_fu {
                    fu |= 0x80;
                }
                if i + 1 == count {
                    fu |= 0x40;
                }
                make_payload(&[0x60 | 28, fu], size, tag)
            };
            let w = RtpWrite::new(pt, seq.into(), time, now, payload)
                .marker(i + 1 == count)
                .nackable(true);
            tx.write_rtp(w);
        }
    }

    pub fn send_audio_frame(&mut self, now: Instant) {
        let Some(mid) = self.source.audio_mid else {
            return;
        };
        let Some(pt) = self.pt_for(mid, Codec::Opus) else {
            return;
        };
        let frame = self.source.audio_frame;
        self.source.audio_frame += 1;
        let seq = self.source.audio_seq;
        self.source.audio_seq += 1;
        let tag = Tag {
            kind: KIND_AUDIO,
            frame,
            index: 0,
            count: 1,
            src_seq: seq as u32,
        };
        let payload = make_payload(&[0x08], 80, tag);
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return;
        };
        tx.write_rtp(RtpWrite::new(
            pt,
            seq.into(),
            frame.wrapping_mul(AUDIO_TICKS),
            now - self.audio_wallclock_lead,
            payload,
        ));
    }

    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        let Ok(r) = Receive::new(Protocol::Udp, source, self.addr, data) else {
            return;
        };
        if self.rtc.accepts(&Input::Receive(
            now,
            Receive::new(Protocol::Udp, source, self.addr, data).expect("parsed"),
        )) {
            let _ = self.rtc.handle_input(Input::Receive(now, r));
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = self.rtc.handle_input(Input::Timeout(now));
    }

    /// Drains the client's output: returns its datagrams (destination, contents).
    pub fn poll(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.next_timeout = t
                        .max(now + Duration::from_micros(100))
                        .min(now + Duration::from_millis(50));
                    return out;
                }
                Ok(Output::Transmit(t)) => out.push((t.destination, t.contents.into())),
                Ok(Output::Event(e)) => self.on_event(now, e),
                Err(_) => {
                    self.next_timeout = now + Duration::from_millis(10);
                    return out;
                }
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::EgressBitrateEstimate(str0m::bwe::BweKind::Remb { estimate, .. }) => {
                self.rembs.push(estimate.as_u64());
            }
            Event::KeyframeRequest(_) => {
                self.source.keyframe_requested = true;
                self.keyframe_requests_seen += 1;
            }
            Event::RtpPacket(p) => {
                let mid = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|s| s.mid());
                let kind = mid
                    .and_then(|m| self.play_mids.iter().find(|(pm, _)| *pm == m))
                    .map(|(_, k)| *k)
                    .unwrap_or(if p.header.payload_type == self.pt_any_opus() {
                        MediaKind::Audio
                    } else {
                        MediaKind::Video
                    });
                let payload: Arc<[u8]> = p.payload.clone();
                self.received.push(Received {
                    kind,
                    seq: *p.seq_no,
                    time: p.header.timestamp,
                    marker: p.header.marker,
                    ssrc: *p.header.ssrc,
                    tag: read_tag(&payload),
                    keyframe_start: is_keyframe_start(&payload),
                    sender_report: p
                        .last_sender_info
                        .map(|si| (si.ntp_time, si.rtp_time.numer())),
                    at: now,
                });
            }
            _ => {}
        }
    }

    fn pt_any_opus(&self) -> Pt {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == Codec::Opus)
            .map(|p| p.pt())
            .unwrap_or(111.into())
    }

    pub fn video(&self) -> Vec<&Received> {
        self.received
            .iter()
            .filter(|r| r.kind == MediaKind::Video)
            .collect()
    }

    pub fn audio(&self) -> Vec<&Received> {
        self.received
            .iter()
            .filter(|r| r.kind == MediaKind::Audio)
            .collect()
    }
}

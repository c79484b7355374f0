//! [`MediaSession`]: the device's one WebRTC session (one str0m `Rtc`, frame-level API) with the
//! SFU, carrying every stream this engine publishes and plays. Sans-IO: datagrams and time go
//! in, datagrams, frames and requests come out.
//!
//! Negotiation: the device always offers. Publishing adds a sendonly video + audio pair of
//! m-lines, playing a recvonly pair; changes made while an offer is out wait for its answer and
//! go into the next offer. Stopping does not renegotiate: the SFU stops forwarding and the
//! m-lines stay idle until the session is rebuilt (on reconnect).
//!
//! ICE-TCP (RFC 6544): the session remembers the SFU's passive TCP candidates. When its owner
//! has connected a TCP stream to one ([`MediaSession::add_tcp_path`]), an active TCP host
//! candidate with the stream's local address joins ICE, and str0m checks and nominates that
//! pair like any other; packets on it are tagged [`Transport::Tcp`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};

use str0m::net::TcpType;

use crate::ice_tcp::Transport;
use crate::protocol::TrackMids;

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackKind {
    Video,
    Audio,
}

impl TrackKind {
    /// RTP clock rate: 90 kHz video, 48 kHz Opus.
    pub fn clock_rate(self) -> u64 {
        match self {
            TrackKind::Video => 90_000,
            TrackKind::Audio => 48_000,
        }
    }
}

/// A change to negotiate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackOp {
    Publish(String),
    Play(String),
}

/// What the media session asks of its owner.
#[derive(Debug)]
pub enum MediaOutput {
    /// Send this packet: a datagram from the media UDP socket, or (`Tcp`) a frame on the
    /// ICE-TCP stream.
    Transmit {
        transport: Transport,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A frame of a played stream: an H.264 access unit (Annex B) or an Opus packet.
    Frame(ReceivedFrame),
    /// The SFU asks for a keyframe of a published stream.
    KeyframeRequest { stream_id: String },
    /// The network's estimate for what this device may send (bits per second).
    TargetBitrate { bps: u64 },
    /// ICE + DTLS are up (true) or lost (false).
    Connected(bool),
}

/// A received frame.
#[derive(Debug, Clone)]
pub struct ReceivedFrame {
    pub stream_id: String,
    pub kind: TrackKind,
    /// The sender's RTP time, extended (no wrap), in `kind.clock_rate()` ticks.
    pub rtp_time: u64,
    pub data: Vec<u8>,
    /// False when packets were lost before this frame.
    pub contiguous: bool,
    pub keyframe: bool,
    pub arrival: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Pair {
    video: Mid,
    audio: Mid,
}

/// A negotiated batch of changes: each change with its mids, and the SDP offer that carries them.
pub type Negotiation = (Vec<(TrackOp, TrackMids)>, String);

/// The session.
pub struct MediaSession {
    rtc: Rtc,
    local: SocketAddr,
    pending: Option<SdpPendingOffer>,
    queued: Vec<TrackOp>,
    publish: HashMap<String, Pair>,
    play: HashMap<String, Pair>,
    incoming: HashMap<Mid, (String, TrackKind)>,
    out: VecDeque<MediaOutput>,
    connected: bool,
    next_timeout: Option<Instant>,
    failed: bool,
    /// The SFU's passive ICE-TCP candidates (from the answer or trickled).
    remote_tcp: Vec<SocketAddr>,
    /// The local address of the ICE-TCP stream, once connected.
    tcp_local: Option<SocketAddr>,
    /// The transport DTLS/RTP last went out on (the nominated pair's).
    selected: Option<Transport>,
}

impl MediaSession {
    /// A new session whose host candidate is `local` (the device's media socket).
    ///
    /// Send-side bandwidth estimation is off: str0m paces at 1.1x its estimate, which holds a
    /// keyframe (ten times an average frame) back for hundreds of milliseconds and made a third
    /// of the pictures late at the player (tests/device_call.rs). The encoder follows the REMB
    /// the SFU sends instead: the weakest player's estimate, floored (docs/sfu.md).
    pub fn new(now: Instant, local: SocketAddr) -> Self {
        let mut rtc = RtcConfig::new()
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_stats_interval(None)
            .build(now);
        if let Ok(c) = Candidate::host(local, "udp") {
            rtc.add_local_candidate(c);
        }
        MediaSession {
            rtc,
            local,
            pending: None,
            queued: Vec::new(),
            publish: HashMap::new(),
            play: HashMap::new(),
            incoming: HashMap::new(),
            out: VecDeque::new(),
            connected: false,
            next_timeout: Some(now),
            failed: false,
            remote_tcp: Vec::new(),
            tcp_local: None,
            selected: None,
        }
    }

    /// The SFU's passive ICE-TCP candidates known so far.
    pub fn remote_tcp_candidates(&self) -> &[SocketAddr] {
        &self.remote_tcp
    }

    /// The transport media goes over (the nominated pair's), once any has gone out.
    pub fn transport(&self) -> Option<Transport> {
        self.selected
    }

    /// A TCP stream from `local` to one of the SFU's passive candidates is connected: ICE
    /// checks the pair and may nominate it.
    pub fn add_tcp_path(&mut self, now: Instant, local: SocketAddr) {
        if self.tcp_local.is_some() || self.failed {
            return;
        }
        let c = Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build();
        if let Ok(c) = c {
            self.tcp_local = Some(local);
            self.rtc.add_local_candidate(c);
            self.handle_timeout(now);
        }
    }

    fn note_candidate(&mut self, c: &Candidate) {
        if c.proto() == Protocol::Tcp
            && c.tcptype() == Some(TcpType::Passive)
            && !self.remote_tcp.contains(&c.addr())
        {
            self.remote_tcp.push(c.addr());
        }
    }

    /// Whether ICE + DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Whether the session failed beyond repair (a panic in str0m, or it closed).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// Queues a change. Returns the negotiated changes and the offer to send when no offer is
    /// out: the caller sends `publish`/`play` for each (with its mids), then the offer.
    pub fn request(&mut self, op: TrackOp) -> Option<Negotiation> {
        self.queued.push(op);
        self.make_offer()
    }

    fn make_offer(&mut self) -> Option<Negotiation> {
        if self.pending.is_some() || self.queued.is_empty() || self.failed {
            return None;
        }
        let ops = std::mem::take(&mut self.queued);
        let mut api = self.rtc.sdp_api();
        let mut done = Vec::new();
        for op in ops {
            let (dir, msid) = match &op {
                TrackOp::Publish(s) => (Direction::SendOnly, Some(s.clone())),
                TrackOp::Play(_) => (Direction::RecvOnly, None),
            };
            let video = api.add_media(MediaKind::Video, dir, msid.clone(), None, None);
            let audio = api.add_media(MediaKind::Audio, dir, msid, None, None);
            done.push((op, Pair { video, audio }));
        }
        let (offer, pending) = api.apply()?;
        self.pending = Some(pending);
        let mut result = Vec::new();
        for (op, pair) in done {
            match &op {
                TrackOp::Publish(s) => {
                    self.publish.insert(s.clone(), pair);
                }
                TrackOp::Play(s) => {
                    self.play.insert(s.clone(), pair);
                    self.incoming
                        .insert(pair.video, (s.clone(), TrackKind::Video));
                    self.incoming
                        .insert(pair.audio, (s.clone(), TrackKind::Audio));
                }
            }
            let mids = TrackMids {
                video: Some(pair.video.to_string()),
                audio: Some(pair.audio.to_string()),
            };
            result.push((op, mids));
        }
        Some((result, offer.to_sdp_string()))
    }

    /// Applies the SFU's answer. Returns the next offer when changes were waiting.
    pub fn accept_answer(
        &mut self,
        now: Instant,
        sdp: &str,
    ) -> Result<Option<Negotiation>, String> {
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("bad SDP answer: {e}"))?;
        for line in sdp.lines() {
            if let Some(c) = line.trim().strip_prefix("a=")
                && c.starts_with("candidate:")
                && let Ok(c) = Candidate::from_sdp_string(c)
            {
                self.note_candidate(&c);
            }
        }
        check_payload_types(sdp)?;
        let Some(pending) = self.pending.take() else {
            return Err("an answer arrived with no offer out".into());
        };
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| format!("answer refused: {e}"))?;
        // str0m acts on a change at its next timeout: give it one now, so that the ICE checks
        // and the DTLS hello go out at once instead of at a timeout computed before the answer
        // (seconds away: it held every device connection back by about 3 s).
        self.handle_timeout(now);
        Ok(self.make_offer())
    }

    /// A remote ICE candidate trickled by the SFU.
    pub fn add_remote_candidate(&mut self, now: Instant, candidate: &str) {
        if let Ok(c) = Candidate::from_sdp_string(candidate) {
            self.note_candidate(&c);
            self.rtc.add_remote_candidate(c);
            self.handle_timeout(now);
        }
    }

    /// Stops publishing a stream (no renegotiation; the m-lines fall idle).
    pub fn stop_publish(&mut self, stream_id: &str) {
        self.publish.remove(stream_id);
        self.queued
            .retain(|op| *op != TrackOp::Publish(stream_id.to_string()));
    }

    /// Stops playing a stream.
    pub fn stop_play(&mut self, stream_id: &str) {
        if let Some(p) = self.play.remove(stream_id) {
            self.incoming.remove(&p.video);
            self.incoming.remove(&p.audio);
        }
        self.queued
            .retain(|op| *op != TrackOp::Play(stream_id.to_string()));
    }

    fn pt_for(&self, mid: Mid, codec: Codec) -> Option<Pt> {
        let media = self.rtc.media(mid)?;
        let remote = media.remote_pts();
        let params = self.rtc.codec_config().params();
        let ok = |p: &&str0m::format::PayloadParams| {
            remote.contains(&p.pt())
                && p.spec().codec == codec
                && (codec != Codec::H264 || p.spec().format.packetization_mode == Some(1))
        };
        // Prefer constrained baseline (what browsers and our encoder use).
        params
            .iter()
            .filter(ok)
            .find(|p| p.spec().format.profile_level_id == Some(0x42e01f))
            .or_else(|| params.iter().find(ok))
            .map(|p| p.pt())
    }

    /// Writes one frame of a published stream. `rtp_time` is in `kind.clock_rate()` ticks.
    /// Frames written before the session is connected are dropped (nothing to send them on).
    pub fn write_frame(
        &mut self,
        now: Instant,
        stream_id: &str,
        kind: TrackKind,
        rtp_time: u64,
        data: &[u8],
    ) -> bool {
        if !self.connected || self.failed {
            return false;
        }
        let Some(pair) = self.publish.get(stream_id).copied() else {
            return false;
        };
        let (mid, codec) = match kind {
            TrackKind::Video => (pair.video, Codec::H264),
            TrackKind::Audio => (pair.audio, Codec::Opus),
        };
        let Some(pt) = self.pt_for(mid, codec) else {
            return false;
        };
        let freq = match kind {
            TrackKind::Video => Frequency::NINETY_KHZ,
            TrackKind::Audio => Frequency::FORTY_EIGHT_KHZ,
        };
        let time = MediaTime::new(rtp_time, freq);
        let rtc = &mut self.rtc;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rtc.writer(mid)
                .map(|w| w.write(pt, now, time, data.to_vec()))
        }));
        let ok = match result {
            Ok(Some(Ok(()))) => true,
            Ok(_) => false,
            Err(_) => {
                self.failed = true;
                false
            }
        };
        // str0m's contract: mutate, then drain. Without this the frame's packets waited for
        // the next timeout (up to a frame interval: ~28 ms of added latency on simulated time).
        self.handle_timeout(now);
        ok
    }

    /// Asks the SFU for a keyframe of a played stream.
    pub fn request_keyframe(&mut self, stream_id: &str) {
        if let Some(pair) = self.play.get(stream_id).copied()
            && let Some(mut w) = self.rtc.writer(pair.video)
        {
            let _ = w.request_keyframe(None, KeyframeRequestKind::Pli);
        }
    }

    /// A datagram from the SFU.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        self.handle_receive_on(now, Transport::Udp, source, data);
    }

    /// A packet from the SFU: a UDP datagram or one deframed ICE-TCP packet.
    pub fn handle_receive_on(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        data: &[u8],
    ) {
        let Ok(contents) = data.try_into() else {
            return;
        };
        let (proto, destination) = match transport {
            Transport::Udp => (Protocol::Udp, self.local),
            Transport::Tcp => match self.tcp_local {
                Some(l) => (Protocol::Tcp, l),
                None => return,
            },
        };
        let input = Input::Receive(
            now,
            Receive {
                proto,
                source,
                destination,
                contents,
            },
        );
        if self.rtc.accepts(&input) {
            self.feed(input);
        }
    }

    /// Time passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.feed(Input::Timeout(now));
    }

    fn feed(&mut self, input: Input) {
        if self.failed {
            return;
        }
        let rtc = &mut self.rtc;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rtc.handle_input(input)));
        if !matches!(r, Ok(Ok(()))) {
            if r.is_err() {
                self.failed = true;
            }
            return;
        }
        self.drive();
    }

    fn drive(&mut self) {
        loop {
            let rtc = &mut self.rtc;
            let polled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rtc.poll_output()));
            let out = match polled {
                Ok(Ok(o)) => o,
                Ok(Err(_)) | Err(_) => {
                    self.failed = true;
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    self.next_timeout = Some(t);
                    return;
                }
                Output::Transmit(t) => {
                    let transport = match t.proto {
                        Protocol::Udp => Transport::Udp,
                        _ => Transport::Tcp,
                    };
                    let contents: Vec<u8> = t.contents.into();
                    // RFC 7983: anything but STUN goes out on the nominated pair.
                    if contents.first().is_some_and(|b| *b > 3) {
                        self.selected = Some(transport);
                    }
                    self.out.push_back(MediaOutput::Transmit {
                        transport,
                        destination: t.destination,
                        contents,
                    });
                }
                Output::Event(e) => self.on_event(e),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.out.push_back(MediaOutput::Connected(true));
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) if self.connected => {
                self.connected = false;
                self.out.push_back(MediaOutput::Connected(false));
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if !self.connected && self.rtc.is_connected() => {
                self.connected = true;
                self.out.push_back(MediaOutput::Connected(true));
            }
            Event::MediaData(d) => {
                let Some((stream_id, kind)) = self.incoming.get(&d.mid).cloned() else {
                    return;
                };
                let keyframe = d.is_keyframe();
                self.out.push_back(MediaOutput::Frame(ReceivedFrame {
                    stream_id,
                    kind,
                    rtp_time: d.time.numer(),
                    data: d.data.to_vec(),
                    contiguous: d.contiguous,
                    keyframe,
                    arrival: d.network_time,
                }));
            }
            Event::KeyframeRequest(r) => {
                if let Some((s, _)) = self.publish.iter().find(|(_, p)| p.video == r.mid) {
                    self.out.push_back(MediaOutput::KeyframeRequest {
                        stream_id: s.clone(),
                    });
                }
            }
            Event::EgressBitrateEstimate(b) => {
                let bps = match b {
                    str0m::bwe::BweKind::Twcc { estimate, .. } => estimate.as_u64(),
                    str0m::bwe::BweKind::Remb { estimate, .. } => estimate.as_u64(),
                    _ => return,
                };
                self.out.push_back(MediaOutput::TargetBitrate { bps });
            }
            _ => {}
        }
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<MediaOutput> {
        self.out.pop_front()
    }

    /// When `handle_timeout` is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.failed { None } else { self.next_timeout }
    }

    /// How long str0m waits at most between timeouts (for the adapter's sleep).
    pub const MAX_SLEEP: Duration = Duration::from_millis(100);
}

/// Refuses an answer whose payload types str0m would trip over: an `a=rtpmap` for a payload type
/// its m-line does not list, or a payload type listed twice in one m-line (sections of one
/// BUNDLE legitimately share payload types: every video section lists the same ones). str0m
/// 0.25 panics on such an answer ("Pt locked multiple times"; found by fuzzing the device's
/// answer handling); an SFU never sends one, so it is a bad answer, not something to adapt to.
pub fn check_payload_types(sdp: &str) -> Result<(), String> {
    let mut section: Vec<u32> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            section.clear();
            for f in m.split_whitespace().skip(3) {
                let Ok(pt) = f.parse::<u32>() else { continue };
                if section.contains(&pt) {
                    return Err(format!("answer refused: payload type {pt} is listed twice"));
                }
                section.push(pt);
            }
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let pt = map
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u32>().ok());
            match pt {
                Some(pt) if section.contains(&pt) => {}
                _ => {
                    return Err(format!(
                        "answer refused: {line:?} maps a payload type its m-line does not list"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod payload_type_tests {
    use super::check_payload_types;

    /// The shape of the answer the sdp fuzz target found (str0m panicked on it): the audio
    /// section maps 127, which only the video section lists.
    #[test]
    fn an_answer_that_maps_a_payload_type_of_another_section_is_refused() {
        let bad = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 108 127\r\na=rtpmap:108 H264/90000\r\n\
                   a=rtpmap:127 H264/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=rtpmap:127 H264/90000\r\na=rtpmap:111 opus/48000/2\r\n";
        let e = check_payload_types(bad).unwrap_err();
        assert!(e.contains("a=rtpmap:127"), "{e}");
        let twice = "m=video 9 UDP/TLS/RTP/SAVPF 108 108\r\n";
        assert!(check_payload_types(twice).unwrap_err().contains("108"));
        // Two video sections of one BUNDLE share their payload types.
        let shared = "m=video 9 UDP/TLS/RTP/SAVPF 108\r\na=rtpmap:108 H264/90000\r\n\
                      m=video 9 UDP/TLS/RTP/SAVPF 108\r\na=rtpmap:108 H264/90000\r\n";
        assert_eq!(check_payload_types(shared), Ok(()));
        let good = "m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\na=rtpmap:108 H264/90000\r\n\
                    a=rtpmap:109 rtx/90000\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                    a=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(check_payload_types(good), Ok(()));
    }
}

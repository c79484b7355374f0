//! The SFU: one str0m `Rtc` per signalling session, RTP-mode forwarding between them.
//!
//! Sans-IO like str0m: the server adapter feeds commands from the room logic
//! ([`Sfu::handle_command`]), datagrams from the one media UDP socket ([`Sfu::handle_receive`])
//! (or frames from an ICE-TCP connection, [`Sfu::handle_receive_on`]) and timeouts
//! ([`Sfu::handle_timeout`]), each stamped with the time, then drains
//! [`Sfu::poll_output`] until it returns [`SfuOutput::Timeout`]. No sockets, threads or clocks
//! live here. `docs/sfu.md` describes the media plane (forwarding, keyframes, NACK/RTX, rate
//! feedback, isolation, metrics).
//!
//! Modules: `session` (one `Rtc`, panic guard), `stream` (a published stream and its
//! players), `forward` (the packet path, player start, keyframe requests), `events` (connection
//! state, feedback, stats), `commands` (room commands and SDP), `keyframe` (the keyframe
//! cache), `h264` (keyframe detection), `rewrite` (per-player sequence numbers, sender-report
//! clock), `rate` (follow-the-weakest-player, stall detection), `codec` (codec policy),
//! `metrics`.

mod codec;
mod commands;
mod events;
mod forward;
mod h264;
mod keyframe;
mod metrics;
mod rate;
mod rewrite;
mod session;
mod stream;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::config::DtlsCert;
use str0m::crypto::CryptoProvider;
use str0m::media::{MediaKind, Mid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::{Input, Output};

use crate::ice_tcp::Transport;
use crate::protocol::{ErrorCode, ServerMessage};
use crate::room::{MediaCommand, SessionId, StreamKey};

pub use codec::{OfferError, check_offer};
use session::{Session, guarded};
use stream::Stream;

/// How the SFU is set up. `Default` gives production values with no candidates.
#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Host candidates to advertise: the media UDP socket's public addresses (one per
    /// `[media] candidate_ips` entry, with the socket's port).
    pub candidates: Vec<SocketAddr>,
    /// Passive ICE-TCP host candidates to advertise (RFC 6544): one per `[media] candidate_ips`
    /// entry with `[media] tcp_port`; empty when ICE-TCP is off.
    pub tcp_candidates: Vec<SocketAddr>,
    /// Per outgoing track: packets str0m may hold queued (paced) for a player before the SFU
    /// drops further packets for that player only.
    pub max_queue_packets: usize,
    /// Packets kept per stream for the keyframe cache (keyframe + the GOP so far).
    pub keyframe_cache_packets: usize,
    /// Minimum interval between keyframe requests (PLI) to one publisher's stream.
    pub keyframe_request_interval: Duration,
    /// The bitrate a publisher is never asked to go below, whatever its weakest player says.
    pub min_video_bitrate_bps: u64,
    /// The bitrate a publisher is never asked to exceed.
    pub max_video_bitrate_bps: u64,
    /// str0m's initial egress estimate towards a new player.
    pub initial_player_bitrate_bps: u64,
    /// How often the publisher's target bitrate (REMB) is recomputed and sent.
    pub remb_interval: Duration,
    /// A session whose ICE+DTLS is not up this long after its first offer is failed.
    pub connect_timeout: Duration,
    /// A connected session from which nothing arrived this long is failed.
    pub idle_timeout: Duration,
    /// A player from which nothing arrived this long does not count for rate feedback.
    pub stale_player_after: Duration,
    /// A player whose receiver reports show no progress this long while packets are being
    /// written to it has stopped reading: its session is failed (`SlowConsumer`).
    pub stall_timeout: Duration,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            candidates: Vec::new(),
            tcp_candidates: Vec::new(),
            max_queue_packets: 400,
            keyframe_cache_packets: 600,
            keyframe_request_interval: Duration::from_millis(1000),
            min_video_bitrate_bps: 300_000,
            max_video_bitrate_bps: 2_500_000,
            initial_player_bitrate_bps: 2_500_000,
            remb_interval: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(10),
            stale_player_after: Duration::from_secs(3),
            stall_timeout: Duration::from_secs(8),
        }
    }
}

/// What the SFU asks the adapter to do.
#[derive(Debug)]
pub enum SfuOutput {
    /// Send this packet: a datagram from the media UDP socket, or (`Tcp`) a frame on the
    /// ICE-TCP connection whose remote address is `destination`.
    Transmit {
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// A signalling message for a session: `Answer`, `Candidate`, `Error` (InvalidSdp,
    /// NoCommonCodec, InvalidCandidate, NoMediaSession, StreamNotFound) or `PlayStopped`.
    Signal {
        session: SessionId,
        message: ServerMessage,
    },
    /// The session's WebRTC session failed (ICE/DTLS failure, timeout, or a caught panic) and
    /// was dropped here: the adapter kicks the signalling session.
    SessionFailed { session: SessionId, code: ErrorCode },
    /// Call [`Sfu::handle_timeout`] at this time (or earlier, when input arrives).
    Timeout(Instant),
}

/// Housekeeping cadence (timeouts, held-back keyframe requests, REMB).
const TICK: Duration = Duration::from_millis(100);

/// The selective forwarding unit. See the module docs for the run-loop contract.
pub struct Sfu {
    config: SfuConfig,
    crypto: Arc<CryptoProvider>,
    /// One DTLS certificate for all sessions (generating one per session costs a key pair).
    dtls_cert: Option<DtlsCert>,
    now: Instant,
    sessions: HashMap<SessionId, Session>,
    /// Sessions whose WebRTC session failed, until the room closes them.
    failed: HashSet<SessionId>,
    streams: HashMap<StreamKey, Stream>,
    /// (publishing session, its m-line) -> the stream and track kind it carries.
    ingress: HashMap<(SessionId, Mid), (StreamKey, MediaKind)>,
    /// (transport, remote address) -> session, learned from accepted STUN.
    routes: HashMap<(Transport, SocketAddr), SessionId>,
    /// Sessions to poll.
    dirty: Vec<SessionId>,
    out: VecDeque<SfuOutput>,
    next_tick: Option<Instant>,
    last_remb: Option<Instant>,
    metrics: metrics::SfuMetrics,
}

impl Sfu {
    pub fn new(config: SfuConfig) -> Self {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let dtls_cert = crypto.dtls_provider.generate_certificate();
        Sfu {
            config,
            crypto,
            dtls_cert,
            now: Instant::now(),
            sessions: HashMap::new(),
            failed: HashSet::new(),
            streams: HashMap::new(),
            ingress: HashMap::new(),
            routes: HashMap::new(),
            dirty: Vec::new(),
            out: VecDeque::new(),
            next_tick: None,
            last_remb: None,
            metrics: metrics::SfuMetrics::default(),
        }
    }

    pub fn config(&self) -> &SfuConfig {
        &self.config
    }

    /// Applies a command from the room logic.
    pub fn handle_command(&mut self, now: Instant, cmd: MediaCommand) {
        self.advance(now);
        self.apply_command(cmd);
    }

    /// A UDP datagram arrived on the media socket (source = remote, destination = our local addr).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.handle_receive_on(now, Transport::Udp, source, destination, data);
    }

    /// A packet arrived: a UDP datagram, or (`Tcp`) one deframed packet of the ICE-TCP
    /// connection from `source` accepted on `destination`.
    pub fn handle_receive_on(
        &mut self,
        now: Instant,
        transport: Transport,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.advance(now);
        let destination = self.local_candidate_for(transport, destination);
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.metrics.garbage_datagrams += 1;
            return;
        };
        if transport == Transport::Tcp {
            self.metrics.tcp_packets_received += 1;
        }
        let proto = match transport {
            Transport::Udp => Protocol::Udp,
            Transport::Tcp => Protocol::Tcp,
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
        // RFC 7983: a first byte 0..=3 is STUN, the only traffic that may open a new route.
        let is_stun = data.first().is_some_and(|b| *b < 4);
        let Some(sid) = self.route((transport, source), &input, is_stun) else {
            self.metrics.unrouted_datagrams += 1;
            return;
        };
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        session.last_receive = now;
        match guarded(sid, || session.rtc.handle_input(input)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(session = %sid, "datagram refused: {e}");
                if !session.rtc.is_alive() {
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                    return;
                }
            }
            Err(_) => {
                self.metrics.panics_caught += 1;
                self.fail(sid, ErrorCode::MediaSessionFailed);
                return;
            }
        }
        // Poll at once: in RTP mode str0m holds only one received packet until polled, so a
        // second datagram before a poll would overwrite it.
        self.drive(sid);
    }

    /// Time passed: drive the sessions whose timeouts are due, and housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        let due: Vec<SessionId> = self
            .sessions
            .values()
            .filter(|s| s.next_timeout <= now)
            .map(|s| s.id)
            .collect();
        for sid in due {
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            match guarded(sid, || session.rtc.handle_input(Input::Timeout(now))) {
                Ok(Ok(())) => self.drive(sid),
                Ok(Err(e)) => {
                    tracing::warn!(session = %sid, "WebRTC session error: {e}");
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                }
                Err(_) => {
                    self.metrics.panics_caught += 1;
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                }
            }
        }
        if self.next_tick.is_none_or(|t| t <= now) {
            self.next_tick = Some(now + TICK);
            self.housekeeping(now);
        }
    }

    /// The next thing to do. Drain until [`SfuOutput::Timeout`] after every `handle_*` call.
    pub fn poll_output(&mut self) -> SfuOutput {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            let Some(sid) = self.dirty.pop() else {
                return SfuOutput::Timeout(self.next_timeout());
            };
            self.drive(sid);
        }
    }

    /// Prometheus text lines: per-stream packets, bytes, NACKs, keyframe requests, estimated
    /// bitrate (label `stream="<app_id>/<stream_id>"`), and a few SFU-wide counters.
    pub fn write_metrics(&self, out: &mut String) {
        metrics::write_header(out);
        let mut streams: Vec<&Stream> = self.streams.values().collect();
        streams.sort_by(|a, b| a.label.cmp(&b.label));
        for s in streams {
            let mut m = s.metrics.clone();
            m.players = s.players.len() as u64;
            m.write(&s.label, out);
        }
        self.metrics.write(self.sessions.len(), out);
    }

    /// Number of live WebRTC sessions (for tests and status).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// str0m only accepts connectivity checks addressed to one of its host candidates. The
    /// adapter may not know which address a datagram was sent to (a socket bound to 0.0.0.0, or
    /// a public address NATed to a private one): map it to the advertised candidate with the
    /// same port and address family.
    fn local_candidate_for(&self, transport: Transport, destination: SocketAddr) -> SocketAddr {
        let candidates = match transport {
            Transport::Udp => &self.config.candidates,
            Transport::Tcp => &self.config.tcp_candidates,
        };
        if candidates.contains(&destination) {
            return destination;
        }
        candidates
            .iter()
            .find(|c| c.port() == destination.port() && c.is_ipv4() == destination.is_ipv4())
            .or_else(|| {
                candidates
                    .iter()
                    .find(|c| c.is_ipv4() == destination.is_ipv4())
            })
            .copied()
            .unwrap_or(destination)
    }

    fn advance(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
    }

    fn next_timeout(&self) -> Instant {
        let tick = self.next_tick.unwrap_or(self.now);
        self.sessions
            .values()
            .map(|s| s.next_timeout)
            .fold(tick, Instant::min)
    }

    fn mark_dirty(&mut self, sid: SessionId) {
        if let Some(s) = self.sessions.get_mut(&sid)
            && !s.dirty
        {
            s.dirty = true;
            self.dirty.push(sid);
        }
    }

    /// Which session a datagram belongs to: by its source address once known, else (STUN only)
    /// by asking each session whether its ICE credentials match.
    fn route(
        &mut self,
        source: (Transport, SocketAddr),
        input: &Input,
        is_stun: bool,
    ) -> Option<SessionId> {
        if let Some(sid) = self.routes.get(&source).copied() {
            match self.sessions.get(&sid) {
                Some(s) if s.rtc.accepts(input) => return Some(sid),
                Some(_) => {}
                None => {
                    self.routes.remove(&source);
                }
            }
        }
        if !is_stun {
            // Only STUN carries credentials; anything else from an unknown address is noise,
            // dropped without asking every session.
            return None;
        }
        let sid = self
            .sessions
            .values()
            .find(|s| s.rtc.accepts(input))
            .map(|s| s.id)?;
        self.routes.insert(source, sid);
        Some(sid)
    }

    /// Polls one session until it has nothing more to say.
    fn drive(&mut self, sid: SessionId) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.dirty = false;
        }
        loop {
            let Some(session) = self.sessions.get_mut(&sid) else {
                return;
            };
            let output = match guarded(sid, || session.rtc.poll_output()) {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    tracing::warn!(session = %sid, "WebRTC session error: {e}");
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                    return;
                }
                Err(_) => {
                    self.metrics.panics_caught += 1;
                    self.fail(sid, ErrorCode::MediaSessionFailed);
                    return;
                }
            };
            match output {
                Output::Timeout(t) => {
                    session.next_timeout = t;
                    if !session.rtc.is_alive() {
                        self.fail(sid, ErrorCode::MediaSessionFailed);
                    }
                    return;
                }
                Output::Transmit(t) => {
                    let transport = match t.proto {
                        Protocol::Udp => Transport::Udp,
                        _ => Transport::Tcp,
                    };
                    if transport == Transport::Tcp {
                        self.metrics.tcp_packets_sent += 1;
                    }
                    self.out.push_back(SfuOutput::Transmit {
                        transport,
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    })
                }
                Output::Event(e) => self.on_event(sid, e),
            }
        }
    }

    /// Ends a session's WebRTC session: tells the adapter, stops what it published, and
    /// removes it from what it played. Nothing else is affected.
    fn fail(&mut self, sid: SessionId, code: ErrorCode) {
        if self.sessions.contains_key(&sid) {
            self.metrics.session_failures += 1;
            self.out
                .push_back(SfuOutput::SessionFailed { session: sid, code });
            self.failed.insert(sid);
        }
        self.forget_session(sid);
    }

    /// Drops every trace of a session (its `Rtc`, routes, published streams, plays).
    fn forget_session(&mut self, sid: SessionId) {
        if let Some(mut s) = self.sessions.remove(&sid) {
            let _ = guarded(sid, || s.rtc.disconnect());
        }
        self.routes.retain(|_, v| *v != sid);
        self.dirty.retain(|v| *v != sid);
        let published: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| s.publisher == sid)
            .map(|(k, _)| k.clone())
            .collect();
        for key in published {
            self.remove_stream(&key);
        }
        for stream in self.streams.values_mut() {
            stream.players.retain(|p| p.session != sid);
        }
    }

    /// Removes a stream and tells its players it stopped.
    fn remove_stream(&mut self, key: &StreamKey) {
        let Some(stream) = self.streams.remove(key) else {
            return;
        };
        self.ingress.retain(|_, (k, _)| k != key);
        for p in stream.players {
            self.out.push_back(SfuOutput::Signal {
                session: p.session,
                message: ServerMessage::PlayStopped {
                    stream_id: key.stream_id.clone(),
                    code: Some(ErrorCode::StreamNotFound),
                },
            });
        }
    }

    fn housekeeping(&mut self, now: Instant) {
        let cfg = &self.config;
        let mut to_fail = Vec::new();
        for s in self.sessions.values() {
            if !s.connected && now.saturating_duration_since(s.started) > cfg.connect_timeout {
                tracing::info!(session = %s.id, "WebRTC session did not connect in time");
                to_fail.push(s.id);
            } else if s.connected
                && now.saturating_duration_since(s.last_receive) > cfg.idle_timeout
            {
                tracing::info!(session = %s.id, "WebRTC session went silent");
                to_fail.push(s.id);
            }
        }
        for sid in to_fail {
            self.fail(sid, ErrorCode::MediaSessionFailed);
        }
        for sid in self.stalled_players(now) {
            tracing::info!(session = %sid, "player stopped reading its media");
            self.fail(sid, ErrorCode::SlowConsumer);
        }
        // Keyframe requests held back by the rate limit.
        let wanted: Vec<StreamKey> = self
            .streams
            .iter()
            .filter(|(_, s)| s.keyframe_wanted)
            .map(|(k, _)| k.clone())
            .collect();
        for key in wanted {
            self.request_keyframe(&key);
        }
        if self
            .last_remb
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.remb_interval)
        {
            self.last_remb = Some(now);
            self.update_rates(now);
        }
    }
}

#[cfg(test)]
impl Sfu {
    /// Runs `f` on a session's `Rtc` the way every call site does: under the panic guard,
    /// failing the session on a panic.
    fn with_session(&mut self, sid: SessionId, f: impl FnOnce(&mut str0m::Rtc)) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if guarded(sid, || f(&mut s.rtc)).is_err() {
            self.metrics.panics_caught += 1;
            self.fail(sid, ErrorCode::MediaSessionFailed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::media::{Direction, MediaKind};

    fn client_offer(now: Instant, port: u16) -> (Mid, String) {
        let mut rtc = str0m::Rtc::builder().set_rtp_mode(true).build(now);
        let addr: SocketAddr = ([10, 0, 1, 1], port).into();
        if let Ok(c) = str0m::Candidate::host(addr, "udp") {
            rtc.add_local_candidate(c);
        }
        let mut api = rtc.sdp_api();
        let mid = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, _pending) = api.apply().expect("an offer");
        (mid, offer.to_sdp_string())
    }

    fn drain(sfu: &mut Sfu) -> Vec<SfuOutput> {
        let mut out = Vec::new();
        loop {
            match sfu.poll_output() {
                SfuOutput::Timeout(_) => return out,
                o => out.push(o),
            }
        }
    }

    #[test]
    fn tcp_candidates_are_advertised_passive_in_the_answer_and_trickled() {
        let now = Instant::now();
        let mut sfu = Sfu::new(SfuConfig {
            candidates: vec![([10, 0, 0, 1], 5000).into()],
            tcp_candidates: vec![([10, 0, 0, 1], 5001).into()],
            ..SfuConfig::default()
        });
        let (_, sdp) = client_offer(now, 40_000);
        let session = SessionId(1);
        sfu.handle_command(now, MediaCommand::Offer { session, sdp });
        let mut answer = None;
        let mut trickled = Vec::new();
        for o in drain(&mut sfu) {
            match o {
                SfuOutput::Signal {
                    message: ServerMessage::Answer { sdp },
                    ..
                } => answer = Some(sdp),
                SfuOutput::Signal {
                    message: ServerMessage::Candidate { candidate, .. },
                    ..
                } => trickled.push(candidate),
                _ => {}
            }
        }
        let answer = answer.expect("an answer");
        let tcp_line = answer
            .lines()
            .find(|l| l.contains(" tcp "))
            .unwrap_or_else(|| panic!("no TCP candidate in\n{answer}"));
        assert!(
            tcp_line.contains("10.0.0.1 5001 typ host tcptype passive"),
            "{tcp_line}"
        );
        let udp_line = answer
            .lines()
            .find(|l| l.contains("10.0.0.1 5000 typ host"))
            .unwrap_or_else(|| panic!("no UDP candidate in\n{answer}"));
        // A client with working UDP prefers it (the priority is the 4th field).
        let prio = |l: &str| -> u64 { l.split_whitespace().nth(3).unwrap().parse().unwrap() };
        assert!(prio(udp_line) > prio(tcp_line), "{udp_line} / {tcp_line}");
        assert_eq!(trickled.len(), 2, "{trickled:?}");
        assert!(trickled[1].contains("tcptype passive"), "{trickled:?}");
        // Without TCP candidates nothing TCP is said.
        let mut sfu = Sfu::new(SfuConfig {
            candidates: vec![([10, 0, 0, 1], 5000).into()],
            ..SfuConfig::default()
        });
        let (_, sdp) = client_offer(now, 40_001);
        sfu.handle_command(now, MediaCommand::Offer { session, sdp });
        for o in drain(&mut sfu) {
            if let SfuOutput::Signal { message, .. } = o {
                let text = format!("{message:?}");
                assert!(!text.contains("tcptype"), "{text}");
            }
        }
    }

    #[test]
    fn a_str0m_panic_ends_only_that_session() {
        let now = Instant::now();
        let mut sfu = Sfu::new(SfuConfig {
            candidates: vec![([10, 0, 0, 1], 5000).into()],
            ..SfuConfig::default()
        });
        let mut mids = Vec::new();
        for id in [1, 2] {
            let (mid, sdp) = client_offer(now, 40_000 + id as u16);
            mids.push(mid);
            let session = SessionId(id);
            sfu.handle_command(now, MediaCommand::Offer { session, sdp });
        }
        drain(&mut sfu);
        assert_eq!(sfu.session_count(), 2);

        // str0m panics when its frame API is used in RTP mode: a stand-in for an internal bug.
        let mid = mids[0];
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        sfu.with_session(SessionId(1), |rtc| {
            let _ = rtc.writer(mid);
        });
        std::panic::set_hook(prev);

        let failed: Vec<(SessionId, ErrorCode)> = drain(&mut sfu)
            .into_iter()
            .filter_map(|o| match o {
                SfuOutput::SessionFailed { session, code } => Some((session, code)),
                _ => None,
            })
            .collect();
        assert_eq!(failed, vec![(SessionId(1), ErrorCode::MediaSessionFailed)]);
        assert_eq!(sfu.session_count(), 1);
        // The other session carries on.
        sfu.handle_timeout(now + Duration::from_millis(500));
        drain(&mut sfu);
        assert_eq!(sfu.session_count(), 1);
        let mut m = String::new();
        sfu.write_metrics(&mut m);
        assert!(m.contains("roomcam_sfu_panics_caught_total 1"), "{m}");
    }
}

//! A whole call on simulated time, in one thread: the room logic, the SFU and any number of
//! engine cores, joined by a simulated signalling channel and a simulated UDP network with
//! delay and seeded loss. No sockets, no clocks: every run is the same.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use roomcam::auth::{self, MintRequest, Privileges};
use roomcam::engine::{
    Command, CoreOutput, Credential, EngineConfig, EngineCore, EngineProfile, Event, ReceivedFrame,
    TrackKind,
};
use roomcam::ice_tcp::Transport;
use roomcam::protocol::ServerMessage;
use roomcam::room::{AppConfig, Now, RoomConfig, RoomOutput, RoomService, SessionId};
use roomcam::sfu::{Sfu, SfuConfig, SfuOutput};

pub const APP: u32 = 4242;
pub const SECRET: &str = "0123456789abcdef0123456789abcdef";
pub const T0_UNIX: i64 = 1_800_000_000;

/// What a simulated device saw.
pub struct Device {
    pub core: EngineCore,
    pub addr: SocketAddr,
    pub session: Option<SessionId>,
    pub events: Vec<Event>,
    pub frames: Vec<ReceivedFrame>,
    /// When each of `frames` came out of the engine (after str0m's reordering and recovery).
    pub frame_times: Vec<Instant>,
    pub keyframe_requests: u32,
    pub bitrates: Vec<u64>,
    pub capturing: Vec<String>,
    /// When each video frame number was written (publisher side).
    pub sent_at: HashMap<u32, Instant>,
    /// Refuse the next signalling connections (a server that is down).
    pub refuse_connect: bool,
    /// Swallow the server's messages (a server that never answers).
    pub deaf: bool,
    /// Renew the token whenever told it will expire.
    pub auto_renew: bool,
    next_frame: u32,
    force_key: bool,
}

struct Datagram {
    transport: Transport,
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

pub struct CallSim {
    pub start: Instant,
    pub now: Instant,
    pub room: RoomService,
    pub sfu: Sfu,
    pub sfu_addr: SocketAddr,
    pub devices: Vec<Device>,
    net: Vec<Datagram>,
    /// Loss on datagrams towards the SFU (0.0-1.0).
    pub loss_up: f64,
    /// Loss on datagrams from the SFU.
    pub loss_down: f64,
    pub delay: Duration,
    rng: StdRng,
    sfu_timeout: Instant,
    /// The server is down: no new connections, nothing delivered.
    pub server_down: bool,
    /// A firewall drops every UDP datagram (ICE-TCP still gets through).
    pub udp_blocked: bool,
    /// The SFU's passive ICE-TCP candidate.
    pub sfu_tcp_addr: SocketAddr,
    /// Open ICE-TCP streams: device index -> the device's local address.
    pub tcp_streams: HashMap<usize, SocketAddr>,
    /// Every TCP connect the devices asked for (device index, destination).
    pub tcp_connects: Vec<(usize, SocketAddr)>,
}

pub fn token(user: &str, now_unix: i64, ttl: i64) -> String {
    let req = MintRequest {
        app_id: APP,
        user_id: user.into(),
        room_id: None,
        privileges: Privileges::default(),
        stream_ids: vec![],
        now_unix,
        ttl_secs: ttl,
    };
    auth::token04::mint(&req, SECRET, &mut rand::thread_rng()).unwrap()
}

impl CallSim {
    pub fn new(seed: u64) -> CallSim {
        Self::with_room_config(seed, |c| c)
    }

    pub fn with_room_config(seed: u64, f: impl FnOnce(RoomConfig) -> RoomConfig) -> CallSim {
        let start = Instant::now();
        let cfg = f(RoomConfig {
            apps: vec![AppConfig {
                app_id: APP,
                server_secret: SECRET.into(),
                app_sign: None,
                allow_app_sign: false,
                revoked_users: vec![],
            }],
            ..RoomConfig::default()
        });
        let sfu_addr: SocketAddr = "10.0.0.1:50000".parse().unwrap();
        let sfu_tcp_addr: SocketAddr = "10.0.0.1:50001".parse().unwrap();
        let sfu = Sfu::new(SfuConfig {
            candidates: vec![sfu_addr],
            tcp_candidates: vec![sfu_tcp_addr],
            ..Default::default()
        });
        CallSim {
            start,
            now: start,
            room: RoomService::new(cfg, seed),
            sfu,
            sfu_addr,
            devices: Vec::new(),
            net: Vec::new(),
            loss_up: 0.0,
            loss_down: 0.0,
            delay: Duration::from_millis(10),
            rng: StdRng::seed_from_u64(seed),
            sfu_timeout: start,
            server_down: false,
            udp_blocked: false,
            sfu_tcp_addr,
            tcp_streams: HashMap::new(),
            tcp_connects: Vec::new(),
        }
    }

    pub fn unix(&self) -> i64 {
        T0_UNIX + self.now.duration_since(self.start).as_secs() as i64
    }

    fn room_now(&self) -> Now {
        Now {
            mono: self.now,
            unix: self.unix(),
        }
    }

    /// Adds a device with a token valid for `ttl` seconds; returns its index.
    pub fn add_device(&mut self, user: &str, ttl: i64) -> usize {
        self.add_device_with(user, ttl, EngineConfig::default())
    }

    /// Like `add_device`, with an engine config.
    pub fn add_device_with(&mut self, user: &str, ttl: i64, config: EngineConfig) -> usize {
        let i = self.devices.len();
        let addr: SocketAddr = format!("10.0.1.{}:40000", i + 1).parse().unwrap();
        let profile = EngineProfile {
            app_id: APP,
            user_id: user.into(),
            user_name: format!("{user} name"),
            credential: Credential::Token(token(user, self.unix(), ttl)),
            scenario: 0,
        };
        let core = EngineCore::new(self.now, profile, config, addr, i as u64 + 7);
        self.devices.push(Device {
            core,
            addr,
            session: None,
            events: Vec::new(),
            frames: Vec::new(),
            frame_times: Vec::new(),
            keyframe_requests: 0,
            bitrates: Vec::new(),
            capturing: Vec::new(),
            sent_at: HashMap::new(),
            refuse_connect: false,
            deaf: false,
            auto_renew: false,
            next_frame: 0,
            force_key: false,
        });
        i
    }

    pub fn command(&mut self, dev: usize, cmd: Command) {
        let now = self.now;
        self.devices[dev].core.command(now, cmd);
        self.pump();
    }

    pub fn login(&mut self, dev: usize, room: &str) {
        self.command(
            dev,
            Command::LoginRoom {
                room_id: room.into(),
                user_updates: true,
                token: None,
            },
        );
    }

    /// Drops the signalling connection of a device (both ends see it close).
    pub fn cut_signalling(&mut self, dev: usize) {
        let now = self.now;
        if let Some(s) = self.devices[dev].session.take() {
            let n = self.room_now();
            self.room.disconnect(n, s);
        }
        self.devices[dev].core.handle_closed(now, "cut by the test");
        self.pump();
    }

    /// Runs every core and the network until nothing is left to do at this instant.
    pub fn pump(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for i in 0..self.devices.len() {
                while let Some(o) = self.devices[i].core.poll_output() {
                    busy = true;
                    self.device_output(i, o);
                }
            }
            while let Some(o) = self.room.poll_output() {
                busy = true;
                self.room_output(o);
            }
            loop {
                match self.sfu.poll_output() {
                    SfuOutput::Timeout(t) => {
                        self.sfu_timeout = t;
                        break;
                    }
                    o => {
                        busy = true;
                        self.sfu_output(o);
                    }
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the simulation does not settle");
    }

    fn device_output(&mut self, i: usize, o: CoreOutput) {
        let now = self.now;
        match o {
            CoreOutput::Connect => {
                if self.devices[i].refuse_connect || self.server_down {
                    self.devices[i]
                        .core
                        .handle_closed(now, "connection refused");
                    return;
                }
                let n = self.room_now();
                let s = self.room.connect(n);
                self.devices[i].session = Some(s);
                self.devices[i].core.handle_connected(now);
            }
            CoreOutput::Disconnect => {
                if let Some(s) = self.devices[i].session.take() {
                    let n = self.room_now();
                    self.room.disconnect(n, s);
                }
            }
            CoreOutput::Send(m) => {
                if let Some(s) = self.devices[i].session {
                    let n = self.room_now();
                    let text = serde_json::to_string(&m).unwrap();
                    self.room.handle_text(n, s, &text);
                }
            }
            CoreOutput::Event(e) => {
                if self.devices[i].auto_renew && matches!(e, Event::TokenWillExpire { .. }) {
                    self.devices[i]
                        .core
                        .command(now, Command::RenewToken { token: None });
                }
                self.devices[i].events.push(e);
            }
            CoreOutput::Transmit {
                transport,
                destination,
                contents,
            } => {
                let from = match transport {
                    Transport::Udp if self.udp_blocked => return,
                    Transport::Udp => self.devices[i].addr,
                    // A TCP stream is reliable: no loss applied.
                    Transport::Tcp => match self.tcp_streams.get(&i) {
                        Some(a) => *a,
                        None => return,
                    },
                };
                if transport == Transport::Udp
                    && (self.rng.gen_bool(self.loss_up.clamp(0.0, 1.0)) || self.server_down)
                {
                    return;
                }
                self.net.push(Datagram {
                    transport,
                    at: now + self.delay,
                    from,
                    to: destination,
                    data: contents,
                });
            }
            CoreOutput::TcpConnect { destination } => {
                self.tcp_connects.push((i, destination));
                if destination != self.sfu_tcp_addr || self.server_down {
                    self.devices[i]
                        .core
                        .handle_tcp_closed(now, "connection refused");
                    return;
                }
                let mut local = self.devices[i].addr;
                local.set_port(45000);
                self.tcp_streams.insert(i, local);
                self.devices[i].core.handle_tcp_connected(now, local);
            }
            CoreOutput::TcpDisconnect => {
                self.tcp_streams.remove(&i);
            }
            CoreOutput::Frame(f) => {
                self.devices[i].frames.push(f);
                self.devices[i].frame_times.push(now);
            }
            CoreOutput::Capture { stream_id, on } => {
                let d = &mut self.devices[i];
                d.capturing.retain(|s| *s != stream_id);
                if on {
                    d.capturing.push(stream_id);
                    d.force_key = true;
                }
            }
            CoreOutput::Playback { .. } => {}
            CoreOutput::KeyframeRequest { .. } => {
                self.devices[i].keyframe_requests += 1;
                self.devices[i].force_key = true;
            }
            CoreOutput::TargetBitrate { bps } => self.devices[i].bitrates.push(bps),
        }
    }

    fn deliver_text(&mut self, session: SessionId, m: &ServerMessage) {
        let now = self.now;
        let Some(i) = self.devices.iter().position(|d| d.session == Some(session)) else {
            return;
        };
        if self.devices[i].deaf {
            return;
        }
        let text = serde_json::to_string(m).unwrap();
        self.devices[i].core.handle_text(now, &text);
    }

    fn room_output(&mut self, o: RoomOutput) {
        let now = self.now;
        match o {
            RoomOutput::Send { session, message } => self.deliver_text(session, &message),
            RoomOutput::Close { session } => {
                if let Some(i) = self.devices.iter().position(|d| d.session == Some(session)) {
                    self.devices[i].session = None;
                    self.devices[i]
                        .core
                        .handle_closed(now, "closed by the server");
                }
            }
            RoomOutput::Media(cmd) => self.sfu.handle_command(now, cmd),
        }
    }

    fn sfu_output(&mut self, o: SfuOutput) {
        let now = self.now;
        match o {
            SfuOutput::Transmit {
                transport,
                source,
                destination,
                contents,
            } => {
                if transport == Transport::Udp
                    && (self.udp_blocked
                        || self.rng.gen_bool(self.loss_down.clamp(0.0, 1.0))
                        || self.server_down)
                {
                    return;
                }
                self.net.push(Datagram {
                    transport,
                    at: now + self.delay,
                    from: source,
                    to: destination,
                    data: contents,
                });
            }
            SfuOutput::Signal { session, message } => {
                if !matches!(message, ServerMessage::PlayStopped { .. }) {
                    self.deliver_text(session, &message);
                }
            }
            SfuOutput::SessionFailed { session, code } => self.room.kick(session, code),
            SfuOutput::Timeout(_) => {}
        }
    }

    /// Advances simulated time by `dt`, in steps of at most 5 ms, delivering datagrams and
    /// timeouts; publishing devices produce a video frame every 33 ms and audio every 20 ms.
    pub fn run(&mut self, dt: Duration) {
        let end = self.now + dt;
        let step = Duration::from_millis(1);
        let mut last_video = self.now;
        let mut last_audio = self.now;
        while self.now < end {
            self.now += step;
            let now = self.now;
            // network
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
                .into_iter()
                .partition(|d| d.at <= now);
            self.net = later;
            for d in due {
                if d.transport == Transport::Tcp {
                    if d.to == self.sfu_tcp_addr {
                        self.sfu
                            .handle_receive_on(now, Transport::Tcp, d.from, d.to, &d.data);
                    } else if let Some((&i, _)) = self.tcp_streams.iter().find(|(_, a)| **a == d.to)
                    {
                        self.devices[i].core.handle_tcp(now, d.from, &d.data);
                    }
                } else if d.to == self.sfu_addr {
                    self.sfu.handle_receive(now, d.from, d.to, &d.data);
                } else if let Some(i) = self.devices.iter().position(|x| x.addr == d.to) {
                    self.devices[i].core.handle_udp(now, d.from, &d.data);
                }
                self.pump();
            }
            // media sources
            if now.duration_since(last_video) >= Duration::from_micros(33_333) {
                last_video = now;
                self.produce(TrackKind::Video);
            }
            if now.duration_since(last_audio) >= Duration::from_millis(20) {
                last_audio = now;
                self.produce(TrackKind::Audio);
            }
            // timers
            for i in 0..self.devices.len() {
                if self.devices[i].core.poll_timeout() <= now {
                    self.devices[i].core.handle_timeout(now);
                }
            }
            if self.sfu_timeout <= now {
                self.sfu.handle_timeout(now);
            }
            if now
                .duration_since(self.start)
                .subsec_millis()
                .is_multiple_of(100)
            {
                let n = self.room_now();
                self.room.handle_timeout(n);
            }
            self.pump();
        }
    }

    fn produce(&mut self, kind: TrackKind) {
        let now = self.now;
        for i in 0..self.devices.len() {
            let streams = self.devices[i].capturing.clone();
            for s in streams {
                let d = &mut self.devices[i];
                let (rtp, data) = match kind {
                    TrackKind::Video => {
                        let n = d.next_frame;
                        d.next_frame += 1;
                        let key = d.force_key || n.is_multiple_of(60);
                        d.force_key = false;
                        d.sent_at.insert(n, now);
                        (u64::from(n) * 3000, video_frame(n, key))
                    }
                    TrackKind::Audio => {
                        let ms = now.duration_since(self.start).as_millis() as u64;
                        (ms * 48, audio_frame(ms as u32))
                    }
                };
                d.core.write_frame(now, &s, kind, rtp, &data);
            }
        }
        self.pump();
    }

    pub fn events(&self, dev: usize) -> &[Event] {
        &self.devices[dev].events
    }
}

/// A synthetic H.264 access unit (Annex B) carrying its frame number: a keyframe has SPS, PPS
/// and an IDR slice of ~4 KB (several packets); other frames one non-IDR slice of ~1 KB.
pub fn video_frame(n: u32, key: bool) -> Vec<u8> {
    let mut v = Vec::new();
    // Real H.264 never holds two zero bytes in a row inside a NAL unit (emulation prevention),
    // and packetizers split on them: the number is written as 8 ASCII digits.
    let body = |v: &mut Vec<u8>, len: usize| {
        v.extend_from_slice(format!("{n:08}").as_bytes());
        v.extend((0..len).map(|i| ((i as u32).wrapping_mul(7).wrapping_add(n) % 251 + 1) as u8));
    };
    if key {
        v.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0x8c, 0x8d, 0x40]);
        v.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80]);
        v.extend_from_slice(&[0, 0, 0, 1, 0x65]);
        body(&mut v, 4000);
    } else {
        v.extend_from_slice(&[0, 0, 0, 1, 0x41]);
        body(&mut v, 1000);
    }
    v
}

/// The frame number and integrity of a received synthetic access unit.
pub fn read_video_frame(data: &[u8]) -> Option<(u32, bool)> {
    // find the last start code; the slice after it carries the number
    let pos = data
        .windows(4)
        .rposition(|w| w == [0, 0, 0, 1])
        .or_else(|| {
            data.windows(3)
                .rposition(|w| w == [0, 0, 1])
                .map(|p| p.saturating_sub(1))
        })?;
    let nal = &data[pos + 4..];
    let key = nal.first()? & 0x1f == 5;
    let n: u32 = std::str::from_utf8(nal.get(1..9)?).ok()?.parse().ok()?;
    let body = &nal[9..];
    let want = if key { 4000 } else { 1000 };
    if body.len() != want {
        return None;
    }
    for (i, b) in body.iter().enumerate() {
        if *b != ((i as u32).wrapping_mul(7).wrapping_add(n) % 251 + 1) as u8 {
            return None;
        }
    }
    Some((n, key))
}

/// A synthetic Opus packet carrying a time stamp.
pub fn audio_frame(ms: u32) -> Vec<u8> {
    let mut v = vec![0xfc];
    v.extend_from_slice(&ms.to_be_bytes());
    v.extend(std::iter::repeat_n(0x55, 60));
    v
}

/// Indexes events of interest.
pub fn count<F: Fn(&Event) -> bool>(events: &[Event], f: F) -> usize {
    events.iter().filter(|e| f(e)).count()
}

pub type Map = HashMap<String, usize>;

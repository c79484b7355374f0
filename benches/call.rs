//! Call benchmark (issue 4): time to first frame, and glass-to-glass latency on loopback, with
//! real GStreamer pipelines on test sources.
//!
//! Everything runs in this process, started as the tests start it: the room service
//! (`roomcam::server::run` on 127.0.0.1:0, with its SFU), a publishing device
//! (`roomcam::appliance::device::run`: `videotestsrc` -> `x264enc` -> str0m) and player engines
//! (`Engine` + `GstBackend`, display `none` = decode into an appsink that syncs to the clock and
//! reads the frame stamp, audio playback `none`). They talk over real loopback WebSocket + UDP.
//!
//! Both backends are wrapped in a thin tap that notes, per video access unit, when it left the
//! publisher's encoder and when the player's engine handed it to the decoder: that is the
//! engine + SRTP + UDP + SFU + UDP + depacketizer part of the latency ("transit" below). The tap
//! forwards frames untouched (one extra channel hop on the publisher side, microseconds).
//!
//! Parts:
//! - `ttff`: a fresh player engine per run: `login_room` + `start_playing_stream` at once, then
//!   the player's decoded-picture counter is polled every 2 ms until the first picture. Stages:
//!   logged in, PLAYING, first video access unit at the player, first decoded picture.
//! - `latency`: per size, a publisher and one player for warm-up + a call; the player's own
//!   capture-to-decoded-and-due window (`PlayStats::latency_ms_p50/p95`, the last 512 pictures)
//!   at the end, the same figure sampled once a second, publisher encode time, transit.
//! - `media`: the same publish and play pipelines connected directly in-process (no engine, no
//!   network, no SFU), at two playout delays: what GStreamer + our playout alone cost.
//!
//! ```text
//! cargo bench --bench call                          # full run (~3 minutes on 2 cores)
//! ROOMCAM_BENCH_QUICK=1 cargo bench --bench call    # ~40 s smoke run
//! cargo bench --bench call -- --help                # every option
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use roomcam::appliance::config::DeviceConfig;
use roomcam::appliance::device;
use roomcam::appliance::gst_backend::{GstBackend, GstHandle, settings_from};
use roomcam::auth::{self, MintRequest, Privileges};
use roomcam::engine::{
    CaptureControl, Credential, EncodedFrame, Engine, EngineOptions, EngineProfile, Event,
    MediaBackend, PlaybackSink, PlayerState, ReceivedFrame, RoomState, RoomStateReason, TrackKind,
};
use roomcam::media::{
    AudioCapture, AudioPlayback, DisplaySink, EncoderChoice, FrameKind, PlayPipeline, PlaySettings,
    PublishPipeline, PublishSettings, VideoSource,
};
use roomcam::server::{self, ServerConfig};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

const APP: u32 = 1234567890;
const SECRET: &str = "0123456789abcdef0123456789abcdef";
const ROOM: &str = "bench-call";
const PUBLISHER: &str = "bench-pub";
/// The publisher's stream id (the device default: `<user_id>-main`).
const PUBLISHER_STREAM: &str = "bench-pub-main";
/// A guard against hangs; never a speed claim.
const GUARD: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone)]
struct Opts {
    runs: usize,
    warmup: Duration,
    call: Duration,
    media: Duration,
    sizes: Vec<(u32, u32)>,
    ttff_size: (u32, u32),
    fps: u32,
    kbps: u32,
    two_way: bool,
    only: Option<String>,
}

const HELP: &str = "\
roomcam call benchmark (time to first frame, glass-to-glass latency)

USAGE: cargo bench --bench call -- [OPTIONS]

  --quick              a short smoke run (also ROOMCAM_BENCH_QUICK=1)
  --runs N             time-to-first-frame runs (default 20, quick 5)
  --warmup-secs S      call warm-up before latency is read (default 5, quick 2)
  --call-secs S        measured call length per size (default 20, quick 5)
  --media-secs S       length of each direct media-only run (default 8, quick 3)
  --sizes WxH,..       latency sizes (default 640x480,1280x720)
  --ttff-size WxH      published size for time to first frame (default 1280x720)
  --fps F              frame rate (default 30)
  --kbps K             [video] max_bitrate_kbps (default 2500)
  --two-way / --one-way  latency calls also with the player publishing a 64x48@5 picture
                       (default: both kinds of call; quick: one-way only)
  --only ttff|latency|media   run one part
";

impl Opts {
    fn parse() -> Opts {
        let env_quick =
            std::env::var("ROOMCAM_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let args: Vec<String> = std::env::args().skip(1).collect();
        let quick = env_quick || args.iter().any(|a| a == "--quick");
        let mut o = Opts {
            runs: if quick { 5 } else { 20 },
            warmup: Duration::from_secs(if quick { 2 } else { 5 }),
            call: Duration::from_secs(if quick { 5 } else { 20 }),
            media: Duration::from_secs(if quick { 3 } else { 8 }),
            sizes: vec![(640, 480), (1280, 720)],
            ttff_size: (1280, 720),
            fps: 30,
            kbps: 2500,
            two_way: !quick,
            only: None,
        };
        let mut it = args.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> String {
                it.next()
                    .unwrap_or_else(|| fail(&format!("{name} needs a value")))
            };
            match a.as_str() {
                // cargo bench passes --bench to harness = false targets.
                "--bench" | "--quick" => {}
                "--help" | "-h" => {
                    print!("{HELP}");
                    std::process::exit(0);
                }
                "--runs" => o.runs = num(&value("--runs")).max(1) as usize,
                "--warmup-secs" => o.warmup = Duration::from_secs(num(&value("--warmup-secs"))),
                "--call-secs" => o.call = Duration::from_secs(num(&value("--call-secs")).max(1)),
                "--media-secs" => o.media = Duration::from_secs(num(&value("--media-secs")).max(1)),
                "--sizes" => o.sizes = value("--sizes").split(',').map(size).collect(),
                "--ttff-size" => o.ttff_size = size(&value("--ttff-size")),
                "--fps" => o.fps = num(&value("--fps")).max(1) as u32,
                "--kbps" => o.kbps = num(&value("--kbps")).max(1) as u32,
                "--only" => o.only = Some(value("--only")),
                "--two-way" => o.two_way = true,
                "--one-way" => o.two_way = false,
                other => fail(&format!("unknown argument {other:?} (try --help)")),
            }
        }
        o
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }
}

fn num(s: &str) -> u64 {
    s.trim()
        .parse()
        .unwrap_or_else(|_| fail(&format!("not a number: {s:?}")))
}

fn size(s: &str) -> (u32, u32) {
    let (w, h) = s
        .trim()
        .split_once('x')
        .unwrap_or_else(|| fail(&format!("not WxH: {s:?}")));
    (num(w) as u32, num(h) as u32)
}

fn fail(msg: &str) -> ! {
    eprintln!("call bench: {msg}");
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// Machine state: load average and this process's CPU time

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// utime + stime of this process, in seconds.
fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14 and stime 15 of the whole line: 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn status_kb(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Percentiles (nearest rank, as the player's own window)

fn pct(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    Some(s[rank.saturating_sub(1).min(s.len() - 1)])
}

fn ms(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into())
}

fn msu(v: Option<u32>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

// ---------------------------------------------------------------------------------------------
// The tap: notes when each video access unit leaves the publisher and reaches the player

/// A hash of an access unit's NAL units (start codes and access unit delimiters left out), so
/// the publisher's and the player's copies match however the depacketizer writes start codes.
fn au_key(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut i = 0;
    let mut starts = Vec::new();
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map(|&e| e - 3).unwrap_or(data.len());
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        let nal = &data[s..end];
        if nal.first().is_some_and(|b| b & 0x1f == 9) {
            continue;
        }
        nal.hash(&mut h);
    }
    h.finish()
}

#[derive(Default)]
struct TapLog {
    /// Access units on their way: key -> when it left the publisher's encoder (+ one hop).
    sent: HashMap<u64, Instant>,
    sent_order: VecDeque<u64>,
    /// Encoder out -> frame handed to the player's decoder, ms.
    transit_ms: Vec<f64>,
    /// Encoder out -> the player's engine received the frame's last packet
    /// (`ReceivedFrame::arrival`), ms.
    to_arrival_ms: Vec<f64>,
    unmatched: u64,
    first_video_at: Option<Instant>,
    first_keyframe_at: Option<Instant>,
    /// The first video frame's RTP time (90 kHz) and when it reached the player.
    first_rtp: Option<(u64, Instant)>,
    /// Video AUs that reached the player within 10 ms of the first (the SFU's cached GOP burst),
    /// and the sender time they span (ms).
    burst_frames: u64,
    burst_span_ms: f64,
    /// Per video frame: sender time since the first frame minus arrival time since the first
    /// frame (ms). For live frames this is how old the first frame was when it arrived, beyond
    /// the live frames' own transit: the age of the frame the player's timeline is anchored on.
    anchor_age_ms: Vec<f64>,
}

type Tap = Arc<Mutex<TapLog>>;

struct TapBackend {
    inner: GstBackend,
    tap: Tap,
}

impl MediaBackend for TapBackend {
    fn start_capture(
        &mut self,
        stream_id: &str,
        frames: mpsc::Sender<EncodedFrame>,
    ) -> Result<Box<dyn CaptureControl>, String> {
        let (tx, mut rx) = mpsc::channel::<EncodedFrame>(64);
        let control = self.inner.start_capture(stream_id, tx)?;
        let tap = self.tap.clone();
        tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                if f.kind == TrackKind::Video {
                    let key = au_key(&f.data);
                    if let Ok(mut t) = tap.lock() {
                        t.sent.insert(key, Instant::now());
                        t.sent_order.push_back(key);
                        while t.sent_order.len() > 600 {
                            if let Some(old) = t.sent_order.pop_front() {
                                t.sent.remove(&old);
                            }
                        }
                    }
                }
                if frames.send(f).await.is_err() {
                    return;
                }
            }
        });
        Ok(control)
    }

    fn start_playback(&mut self, stream_id: &str) -> Result<Box<dyn PlaybackSink>, String> {
        let inner = self.inner.start_playback(stream_id)?;
        Ok(Box::new(TapSink {
            inner,
            tap: self.tap.clone(),
        }))
    }
}

struct TapSink {
    inner: Box<dyn PlaybackSink>,
    tap: Tap,
}

impl PlaybackSink for TapSink {
    fn push(&mut self, frame: &ReceivedFrame) -> bool {
        // Only the measured stream (a two-way call's publisher also plays the player's stream).
        if frame.kind == TrackKind::Video && frame.stream_id == PUBLISHER_STREAM {
            let now = Instant::now();
            let key = au_key(&frame.data);
            if let Ok(mut t) = self.tap.lock() {
                t.first_video_at.get_or_insert(now);
                let (rtp0, at0) = *t.first_rtp.get_or_insert((frame.rtp_time, now));
                let sender_ms = frame.rtp_time.saturating_sub(rtp0) as f64 / 90.0;
                let arrival_ms = now.saturating_duration_since(at0).as_secs_f64() * 1e3;
                if arrival_ms < 10.0 {
                    t.burst_frames += 1;
                    t.burst_span_ms = t.burst_span_ms.max(sender_ms);
                }
                t.anchor_age_ms.push(sender_ms - arrival_ms);
                if frame.keyframe {
                    t.first_keyframe_at.get_or_insert(now);
                }
                match t.sent.get(&key) {
                    Some(&at) => {
                        let d = now.saturating_duration_since(at).as_secs_f64() * 1e3;
                        t.transit_ms.push(d);
                        let a = frame.arrival.saturating_duration_since(at).as_secs_f64() * 1e3;
                        t.to_arrival_ms.push(a);
                    }
                    None => t.unmatched += 1,
                }
            }
        }
        self.inner.push(frame)
    }
}

// ---------------------------------------------------------------------------------------------
// Server, publisher, players

struct BenchServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start_server(rt: &Runtime) -> BenchServer {
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[media]\nudp_port = 0\n\
         [[apps]]\napp_id = {APP}\nserver_secret = \"{SECRET}\"\n"
    );
    let config = ServerConfig::parse(&text, Path::new("bench.toml")).expect("server config");
    let listener = rt.block_on(server::bind(&config)).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, rx) = oneshot::channel::<()>();
    let task = rt.spawn(async move {
        server::run(listener, config, async move {
            let _ = rx.await;
        })
        .await
        .expect("server run");
    });
    BenchServer {
        addr,
        stop: Some(stop),
        task,
    }
}

impl BenchServer {
    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn stop(mut self, rt: &Runtime) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task;
        if rt
            .block_on(async move { tokio::time::timeout(GUARD, task).await })
            .is_err()
        {
            eprintln!("warning: server did not stop within {GUARD:?}");
        }
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn token(user: &str) -> String {
    let req = MintRequest {
        app_id: APP,
        user_id: user.into(),
        room_id: Some(ROOM.into()),
        privileges: Privileges::default(),
        stream_ids: Vec::new(),
        now_unix: now_unix(),
        ttl_secs: 3600,
    };
    auth::token04::mint(&req, SECRET, &mut rand::thread_rng()).expect("mint")
}

/// A device config as the tests write it: test sources, x264enc, nothing shown or heard.
fn device_config(url: &str, user: &str, (w, h): (u32, u32), o: &Opts) -> DeviceConfig {
    let text = format!(
        "[server]\nurl = \"{url}\"\n[identity]\napp_id = {APP}\nuser_id = \"{user}\"\ntoken = \"{}\"\n\
         [room]\nid = \"{ROOM}\"\nauto_join = true\n\
         [video]\nsource = \"test\"\nwidth = {w}\nheight = {h}\nfps = {}\nencoder = \"x264enc\"\nmax_bitrate_kbps = {}\n\
         [audio]\ncapture = \"test\"\nplayback = \"none\"\necho_cancel = false\n[display]\nsink = \"none\"\n",
        token(user),
        o.fps,
        o.kbps
    );
    DeviceConfig::parse(&text, Path::new("bench-device.toml")).expect("device config")
}

struct Publisher {
    stop: mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    media: GstHandle,
    stream_id: String,
}

fn start_publisher(rt: &Runtime, url: &str, size: (u32, u32), o: &Opts, tap: &Tap) -> Publisher {
    let cfg = device_config(url, PUBLISHER, size, o);
    let stream_id = cfg.stream_id();
    let (publish, play) = settings_from(&cfg).expect("media settings");
    let backend = GstBackend::new(publish, play).expect("GStreamer");
    let media = backend.handle();
    let stats = backend.stats_reader();
    let backend = TapBackend {
        inner: backend,
        tap: tap.clone(),
    };
    let (stop, rx) = device::shutdown_channel();
    let task = rt.spawn(async move {
        if let Err(e) = device::run(cfg, Box::new(backend), stats, rx, |_| {}).await {
            eprintln!("publisher device stopped: {e}");
        }
    });
    let p = Publisher {
        stop,
        task,
        media,
        stream_id,
    };
    // Publishing once the encoder has sent a few frames.
    let deadline = Instant::now() + GUARD;
    loop {
        let sent = p
            .media
            .publisher(&p.stream_id)
            .map(|x| x.stats().video_frames_sent)
            .unwrap_or(0);
        if sent >= 10 {
            break;
        }
        if Instant::now() > deadline {
            fail("the publisher did not start encoding");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

impl Publisher {
    fn stop(self, rt: &Runtime) {
        let Publisher { stop, task, .. } = self;
        rt.block_on(async move {
            let _ = stop.send(()).await;
            if tokio::time::timeout(GUARD, task).await.is_err() {
                eprintln!("warning: publisher did not stop within {GUARD:?}");
            }
        });
    }
}

fn play_settings() -> PlaySettings {
    PlaySettings {
        display: DisplaySink::None,
        playback: AudioPlayback::None,
        ..PlaySettings::default()
    }
}

struct Player {
    engine: Engine,
    events: mpsc::UnboundedReceiver<Event>,
    media: GstHandle,
}

/// What a player publishes when it publishes at all: a 64x48@5 test picture, no audio.
fn tiny_publish() -> PublishSettings {
    let mut p = PublishSettings::default();
    p.video.source = VideoSource::Test;
    p.video.width = 64;
    p.video.height = 48;
    p.video.fps = 5;
    p.video.encoder = EncoderChoice::X264enc;
    p.video.max_bitrate_kbps = 300;
    p.audio.capture = AudioCapture::None;
    p
}

async fn new_player(url: &str, user: &str, tap: &Tap) -> Player {
    // Used only when the player also publishes (`--two-way` calls).
    let publish = tiny_publish();
    let backend = GstBackend::new(publish, play_settings()).expect("GStreamer");
    let media = backend.handle();
    let backend = TapBackend {
        inner: backend,
        tap: tap.clone(),
    };
    let profile = EngineProfile {
        app_id: APP,
        user_id: user.into(),
        user_name: user.into(),
        credential: Credential::Token(token(user)),
        scenario: 0,
    };
    let (engine, events) = Engine::create(profile, EngineOptions::new(url), Box::new(backend))
        .await
        .expect("engine");
    Player {
        engine,
        events,
        media,
    }
}

// ---------------------------------------------------------------------------------------------
// Time to first frame

#[derive(Debug, Default, Clone)]
struct FirstFrame {
    logined: Option<f64>,
    playing: Option<f64>,
    first_rx: Option<f64>,
    first_key_rx: Option<f64>,
    decoded: Option<f64>,
    first_was_keyframe: Option<bool>,
    burst_frames: u64,
    burst_span_ms: f64,
}

async fn first_frame_run(url: &str, stream: &str, i: usize) -> FirstFrame {
    let tap: Tap = Arc::default();
    let mut p = new_player(url, &format!("bench-ttff-{i}"), &tap).await;
    let t0 = Instant::now();
    let since = |t: Instant| t.saturating_duration_since(t0).as_secs_f64() * 1e3;
    p.engine.login_room(ROOM, false, None).expect("login_room");
    p.engine
        .start_playing_stream(stream)
        .expect("start_playing_stream");
    let mut r = FirstFrame::default();
    let deadline = t0 + GUARD;
    let mut poll = tokio::time::interval(Duration::from_millis(2));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while r.decoded.is_none() && Instant::now() < deadline {
        tokio::select! {
            e = p.events.recv() => match e {
                Some(Event::RoomStateUpdate { state: RoomState::Connected, reason: RoomStateReason::Logined, .. }) => {
                    r.logined.get_or_insert(since(Instant::now()));
                }
                Some(Event::PlayerStateUpdate { state: PlayerState::Playing, .. }) => {
                    r.playing.get_or_insert(since(Instant::now()));
                }
                Some(Event::PlayerStateUpdate { state: PlayerState::NoPlay, error_code, .. }) if error_code != 0 => {
                    eprintln!("run {i}: play failed with code {error_code}");
                    break;
                }
                Some(_) => {}
                None => break,
            },
            _ = poll.tick() => {
                if let Some(s) = p.media.player(stream).map(|x| x.stats())
                    && s.video_frames_decoded > 0
                {
                    r.decoded = Some(since(Instant::now()));
                    r.first_was_keyframe = s.first_frame_was_keyframe;
                }
            }
        }
    }
    if let Ok(t) = tap.lock() {
        r.first_rx = t.first_video_at.map(since);
        r.first_key_rx = t.first_keyframe_at.map(since);
        r.burst_frames = t.burst_frames;
        r.burst_span_ms = t.burst_span_ms;
    }
    p.engine.destroy().await;
    r
}

fn bench_first_frame(rt: &Runtime, o: &Opts, url: &str) {
    println!(
        "\n## Time to first frame ({} runs, publisher {}x{}@{} x264enc already publishing)\n",
        o.runs, o.ttff_size.0, o.ttff_size.1, o.fps
    );
    let tap: Tap = Arc::default();
    let publisher = start_publisher(rt, url, o.ttff_size, o, &tap);
    let stream = publisher.stream_id.clone();
    // A keyframe interval (2 s at key-int-max = 2 x fps) into the call.
    std::thread::sleep(Duration::from_secs(2));
    println!("load average before: {}", loadavg());
    let cpu0 = cpu_secs();
    let start = Instant::now();
    let mut all = Vec::new();
    println!(
        "\n| run | logged in ms | PLAYING ms | first AU at player ms | first IDR at player ms | first decoded ms | first decoded was IDR | AUs in the first 10 ms (sender span ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for i in 0..o.runs {
        let r = rt.block_on(first_frame_run(url, &stream, i));
        println!(
            "| {i} | {} | {} | {} | {} | {} | {} | {} ({:.0}) |",
            ms(r.logined),
            ms(r.playing),
            ms(r.first_rx),
            ms(r.first_key_rx),
            ms(r.decoded),
            r.first_was_keyframe
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            r.burst_frames,
            r.burst_span_ms
        );
        all.push(r);
        // Runs start at different points of the publisher's keyframe interval.
        std::thread::sleep(Duration::from_millis(150 + (i as u64 * 37) % 200));
    }
    let cpu = cpu_secs() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    let col =
        |f: fn(&FirstFrame) -> Option<f64>| -> Vec<f64> { all.iter().filter_map(f).collect() };
    let stages: [(&str, Vec<f64>); 5] = [
        (
            "login_room -> logged in (RoomStateUpdate Logined)",
            col(|r| r.logined),
        ),
        (
            "login_room -> PLAYING (PlayerStateUpdate)",
            col(|r| r.playing),
        ),
        (
            "login_room -> first video AU at the player",
            col(|r| r.first_rx),
        ),
        (
            "login_room -> first IDR at the player",
            col(|r| r.first_key_rx),
        ),
        (
            "**login_room -> first decoded picture**",
            col(|r| r.decoded),
        ),
    ];
    println!("\n| stage | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|");
    for (name, v) in &stages {
        println!(
            "| {name} | {} | {} | {} | {} |",
            v.len(),
            ms(pct(v, 50.0)),
            ms(pct(v, 95.0)),
            ms(pct(v, 100.0))
        );
    }
    let missing = all.iter().filter(|r| r.decoded.is_none()).count();
    if missing > 0 {
        println!("\n{missing} run(s) decoded nothing within {GUARD:?}");
    }
    println!(
        "\nprocess CPU during the runs: {:.0}% of one core ({cpu:.1} s in {wall:.1} s); load average after: {}",
        100.0 * cpu / wall,
        loadavg()
    );
    publisher.stop(rt);
}

// ---------------------------------------------------------------------------------------------
// Glass-to-glass latency through the SFU

fn bench_latency(rt: &Runtime, o: &Opts, url: &str) {
    println!(
        "\n## Glass-to-glass latency on loopback (x264enc, {} fps, max {} kbps; warm-up {} s, call {} s)\n",
        o.fps,
        o.kbps,
        o.warmup.as_secs(),
        o.call.as_secs()
    );
    let mut rows = Vec::new();
    let ways: &[bool] = if o.two_way { &[false, true] } else { &[false] };
    for &(w, h) in &o.sizes {
        for &two_way in ways {
            let tap: Tap = Arc::default();
            let publisher = start_publisher(rt, url, (w, h), o, &tap);
            let stream = publisher.stream_id.clone();
            let load_before = loadavg();
            let player = rt.block_on(new_player(url, &format!("bench-lat-{w}x{h}"), &tap));
            player
                .engine
                .login_room(ROOM, false, None)
                .expect("login_room");
            player
                .engine
                .start_playing_stream(&stream)
                .expect("start_playing_stream");
            if two_way {
                player
                    .engine
                    .start_publishing_stream(&format!("bench-lat-{w}x{h}-back"), "")
                    .expect("start_publishing_stream");
            }
            std::thread::sleep(o.warmup);
            let stats0 = player.media.player(&stream).map(|p| p.stats());
            if let Ok(mut t) = tap.lock() {
                t.transit_ms.clear();
                t.to_arrival_ms.clear();
                t.anchor_age_ms.clear();
            }
            let cpu0 = cpu_secs();
            let t0 = Instant::now();
            let mut p50s = Vec::new();
            let mut p95s = Vec::new();
            let mut enc_us = Vec::new();
            while t0.elapsed() < o.call {
                std::thread::sleep(Duration::from_secs(1));
                if let Some(s) = player.media.player(&stream).map(|p| p.stats()) {
                    p50s.extend(s.latency_ms_p50.map(f64::from));
                    p95s.extend(s.latency_ms_p95.map(f64::from));
                }
                if let Some(s) = publisher.media.publisher(&stream).map(|p| p.stats()) {
                    enc_us.extend(s.encode_time_us_mean.map(|v| v as f64));
                }
            }
            let cpu = cpu_secs() - cpu0;
            let wall = t0.elapsed().as_secs_f64();
            let end = player.media.player(&stream).map(|p| p.stats());
            let pubst = publisher.media.publisher(&stream).map(|p| p.stats());
            let (transit, unmatched, anchor) = tap
                .lock()
                .map(|t| {
                    (
                        (t.transit_ms.clone(), t.to_arrival_ms.clone()),
                        t.unmatched,
                        (pct(&t.anchor_age_ms, 50.0), t.burst_frames, t.burst_span_ms),
                    )
                })
                .unwrap_or_default();
            let rss = status_kb("VmRSS:");
            let load_after = loadavg();
            rt.block_on(player.engine.destroy());
            drop(player.events);
            publisher.stop(rt);
            rows.push((
                (w, h, two_way),
                stats0,
                end,
                pubst,
                p50s,
                p95s,
                enc_us,
                transit,
                unmatched,
                anchor,
                cpu / wall,
                rss,
                load_before,
                load_after,
            ));
        }
    }
    println!(
        "| size, call | g2g p50 ms | g2g p95 ms | 1-s samples of p50 (min-max) | of p95 (min-max) | encode_time_us_mean as ms | encoder out -> player engine has the AU p50 / p95 ms | -> handed to the decoder p50 / p95 ms | stamped frames published in call | decoded in call | skipped | late | dropped | playout moves | A/V offset ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (size, s0, end, pubst, p50s, p95s, enc_us, transit, _, _, _, _, _, _) in &rows {
        let e = end.clone().unwrap_or_default();
        let b = s0.clone().unwrap_or_default();
        let mn = |v: &Vec<f64>| pct(v, 0.0);
        let mx = |v: &Vec<f64>| pct(v, 100.0);
        println!(
            "| {}x{} {} | **{}** | **{}** | {}-{} | {}-{} | {} | {} / {} | {} / {} | {} | {} | {} | {} | {} | {} | {} |",
            size.0,
            size.1,
            if size.2 { "two-way" } else { "one-way" },
            msu(e.latency_ms_p50),
            msu(e.latency_ms_p95),
            ms(mn(p50s)),
            ms(mx(p50s)),
            ms(mn(p95s)),
            ms(mx(p95s)),
            ms(pct(enc_us, 50.0).map(|v| v / 1e3)),
            ms(pct(&transit.1, 50.0)),
            ms(pct(&transit.1, 95.0)),
            ms(pct(&transit.0, 50.0)),
            ms(pct(&transit.0, 95.0)),
            match (b.last_frame_number, e.last_frame_number) {
                (Some(x), Some(y)) => y.wrapping_sub(x).to_string(),
                _ => "-".into(),
            },
            e.video_frames_decoded - b.video_frames_decoded,
            e.frames_skipped - b.frames_skipped,
            e.late_frames - b.late_frames,
            e.dropped_frames - b.dropped_frames,
            e.playout_adjustments,
            ms(e.av_offset_ms),
        );
        let _ = pubst;
    }
    println!();
    for (size, _, _, pubst, _, _, _, transit, unmatched, anchor, cpu, rss, lb, la) in &rows {
        let p = pubst.clone();
        println!(
            "- {}x{} {}: the player's first {} AUs came within 10 ms (spanning {:.0} ms of sender time); its timeline is anchored on a frame {} ms older than the live frames (median over the call); publisher sent {} video frames ({} keyframes, {} dropped), bitrate {} kbps; transit matched {} AUs ({} unmatched); \
             this process (server + publisher + player) used {:.0}% of one core, VmRSS {} MB; load average before {lb}, after {la}",
            size.0,
            size.1,
            if size.2 { "two-way" } else { "one-way" },
            anchor.1,
            anchor.2,
            ms(anchor.0),
            p.as_ref().map(|p| p.video_frames_sent).unwrap_or(0),
            p.as_ref().map(|p| p.keyframes_sent).unwrap_or(0),
            p.as_ref().map(|p| p.frames_dropped).unwrap_or(0),
            p.as_ref().map(|p| p.bitrate_kbps).unwrap_or(0),
            transit.0.len(),
            unmatched,
            100.0 * cpu,
            rss.map(|k| k / 1024).unwrap_or(0),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The media pipelines alone, connected directly

fn bench_media(rt: &Runtime, o: &Opts) {
    let (w, h) = *o.sizes.last().unwrap_or(&(1280, 720));
    println!(
        "\n## Media pipelines alone ({w}x{h}@{} x264enc -> PlayPipeline in-process, no engine / network / SFU; {} s each after 1 s)\n",
        o.fps,
        o.media.as_secs()
    );
    println!(
        "| playout delay ms | g2g p50 ms | g2g p95 ms | capture -> encoded AU p50 / p95 ms | decoded | late | load average before |"
    );
    println!("|---|---|---|---|---|---|---|");
    for delay_ms in [40u64, 0] {
        let cfg = device_config("ws://127.0.0.1:1/ws", "bench-media", (w, h), o);
        let (publish, _) = settings_from(&cfg).expect("settings");
        let load = loadavg();
        let (publisher, mut rx) = PublishPipeline::new(&publish).expect("publish pipeline");
        let player = PlayPipeline::new(&PlaySettings {
            playout_delay: Duration::from_millis(delay_ms),
            ..play_settings()
        })
        .expect("play pipeline");
        publisher.start().expect("publish start");
        player.start().expect("play start");
        let run = o.media + Duration::from_secs(1);
        let started = Instant::now();
        let mut encoded_ms = Vec::new();
        rt.block_on(async {
            let end = tokio::time::Instant::now() + run;
            loop {
                let f = tokio::select! {
                    f = rx.recv() => f,
                    _ = tokio::time::sleep_until(end) => None,
                };
                let Some(f) = f else { break };
                if f.kind == FrameKind::Video
                    && started.elapsed() > Duration::from_secs(1)
                    && let Some(at) = f.capture_unix_ms
                {
                    encoded_ms.push(unix_ms().saturating_sub(at) as f64);
                }
                let r = match f.kind {
                    FrameKind::Video => player.push_video(f.data, f.pts),
                    FrameKind::Audio => player.push_audio(f.data, f.pts),
                };
                if let Err(e) = r {
                    eprintln!("media bench: {e}");
                    break;
                }
            }
        });
        let s = player.stats();
        player.stop();
        publisher.stop();
        println!(
            "| {delay_ms} | **{}** | **{}** | {} / {} | {} | {} | {load} |",
            msu(s.latency_ms_p50),
            msu(s.latency_ms_p95),
            ms(pct(&encoded_ms, 50.0)),
            ms(pct(&encoded_ms, 95.0)),
            s.video_frames_decoded,
            s.late_frames,
        );
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let o = Opts::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    roomcam::media::init().expect("GStreamer init");
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    println!("# roomcam call benchmark");
    println!(
        "\n{ncpu} CPUs; load average at start: {}{}",
        loadavg(),
        if load1() > 1.5 {
            " (above 1.5: other work shares the cores; numbers taken under load)"
        } else {
            ""
        }
    );
    let started = Instant::now();
    let srv = start_server(&rt);
    let url = srv.url();
    if o.runs("ttff") {
        bench_first_frame(&rt, &o, &url);
    }
    if o.runs("latency") {
        bench_latency(&rt, &o, &url);
    }
    if o.runs("media") {
        bench_media(&rt, &o);
    }
    srv.stop(&rt);
    println!(
        "\nfinished in {:.0} s; load average at end: {}; peak VmHWM of the whole bench process {} MB",
        started.elapsed().as_secs_f64(),
        loadavg(),
        status_kb("VmHWM:").map(|k| k / 1024).unwrap_or(0)
    );
}

//! The publishing pipeline: capture -> H.264 (constrained baseline, Annex-B access units) and
//! Opus (one packet per frame) -> [`EncodedFrame`]s on a bounded channel for the engine.
//!
//! ```text
//! capture (own pipeline, `camera.rs`): src -> videoconvert -> videoscale -> I420 WxH@fps -> appsink
//! video: appsrc (camera pictures, or the "Camera unavailable" card) -> I420 WxH@fps [stamp probe]
//!        -> queue(2, leaky) -> encoder -> h264parse config-interval=-1
//!        -> byte-stream/au/constrained-baseline -> appsink
//! audio: src -> audioconvert -> audioresample -> S16 48 kHz mono -> opusenc 20 ms voice -> appsink
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;
use tokio::sync::mpsc;

use super::MediaError;
use super::camera::{Camera, SourceOpener};
use super::common::{self, BusWatch, make, set_if_present};
use super::screen::ScreenInput;
use super::settings::{
    AudioCapture, EncoderChoice, MIN_BITRATE_KBPS, PublishSettings, VideoSettings, VideoSource,
};
use super::stamp::{self, Stamp};
use crate::devices::{self, EncoderPlan, Listing, VideoPlan};

/// How long an automatically chosen camera may take to deliver its first frame before it is
/// reported and the next candidate (finally the test pattern) is tried.
pub const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(4);

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    Video,
    Audio,
}

impl FrameKind {
    /// RTP clock rate of the stream: 90 kHz video, 48 kHz Opus.
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            FrameKind::Video => 90_000,
            FrameKind::Audio => 48_000,
        }
    }
}

impl EncodedFrame {
    /// `pts` in RTP clock ticks (before the session's random base and the 32-bit wrap).
    pub fn rtp_ticks(&self) -> u64 {
        (self.pts.as_nanos() * u128::from(self.kind.rtp_clock_rate()) / 1_000_000_000) as u64
    }
}

/// One encoded frame for the engine: an H.264 Annex-B access unit or one Opus packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub kind: FrameKind,
    pub data: Vec<u8>,
    /// Pipeline running time at capture: monotonic, on one timeline for audio and video. The
    /// engine derives the RTP timestamp from it (90 kHz video, 48 kHz audio).
    pub pts: Duration,
    pub duration: Duration,
    /// An IDR access unit (with SPS/PPS in front). Always true for audio.
    pub keyframe: bool,
    /// Capture time as Unix ms (the pipeline clock mapped to the wall clock at start); for test
    /// video it is also what the frame stamp in the picture says (mod 2^32).
    pub capture_unix_ms: Option<u64>,
}

/// Publisher counters for the status endpoint and the benchmarks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishStats {
    /// Encoder element in use (`x264enc`, `v4l2h264enc`).
    pub encoder: String,
    /// The video source in use: `test pattern`, `/dev/video0 MJPG 1280x720@30 + jpegdec`,
    /// `libcamera <id> 1280x720@30` (after any `auto` fallback).
    pub video_source: String,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
    pub keyframes_sent: u64,
    /// Frames dropped because the engine's channel was full.
    pub frames_dropped: u64,
    pub bitrate_kbps: u32,
    /// Mean time a raw frame spent in the encoder, over the recent frames (µs).
    pub encode_time_us_mean: Option<u64>,
    /// The camera is gone: the "Camera unavailable" card is published instead.
    pub showing_card: bool,
    /// Times the camera went away during this publish.
    pub camera_losses: u64,
    /// Card pictures published.
    pub card_frames: u64,
}

#[derive(Default)]
struct Counters {
    video: AtomicU64,
    audio: AtomicU64,
    keyframes: AtomicU64,
    dropped: AtomicU64,
    bitrate_kbps: AtomicU32,
    /// Unix ns at running time 0; 0 until started.
    anchor_unix_ns: AtomicU64,
    frame_number: AtomicU32,
    need_keyframe: AtomicBool,
    encode: Mutex<EncodeTimer>,
    /// Raw frames out of the video source (the first-frame check).
    raw_frames: AtomicU64,
}

/// Time in the encoder: the instant each raw pts went in, matched when it comes out.
#[derive(Default)]
struct EncodeTimer {
    pending: VecDeque<(u64, Instant)>,
    recent_us: VecDeque<u64>,
}

impl EncodeTimer {
    fn enter(&mut self, pts: u64) {
        if self.pending.len() >= 64 {
            self.pending.pop_front();
        }
        self.pending.push_back((pts, Instant::now()));
    }

    /// Frames leave in the order they entered (no B-frames, no reordering); the encoder may
    /// shift output timestamps (GstVideoEncoder's DTS adjustment), so they are not matched.
    fn leave(&mut self) {
        if let Some((_, at)) = self.pending.pop_front() {
            if self.recent_us.len() >= 120 {
                self.recent_us.pop_front();
            }
            self.recent_us.push_back(at.elapsed().as_micros() as u64);
        }
    }

    fn mean_us(&self) -> Option<u64> {
        let n = self.recent_us.len() as u64;
        (n > 0).then(|| self.recent_us.iter().sum::<u64>() / n)
    }
}

impl Counters {
    /// Unix ms of running time `running`: the pipeline clock mapped to the wall clock once, the
    /// first time a running pipeline element asks (so every frame uses the same mapping).
    fn capture_unix_ms(&self, element: &gst::Element, running: Duration) -> Option<u64> {
        let mut anchor = self.anchor_unix_ns.load(Ordering::Relaxed);
        if anchor == 0 {
            let now = common::running_time(element)?;
            let fresh = common::unix_ns().saturating_sub(now.as_nanos()) as u64;
            anchor = match self.anchor_unix_ns.compare_exchange(
                0,
                fresh,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => fresh,
                Err(existing) => existing,
            };
        }
        Some((u128::from(anchor) + running.as_nanos()) as u64 / 1_000_000)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EncoderKind {
    V4l2,
    X264,
}

/// Capture and encode; frames come out on the receiver returned by [`PublishPipeline::new`].
pub struct PublishPipeline {
    pipeline: gst::Pipeline,
    encoder: gst::Element,
    encoder_kind: EncoderKind,
    video_sink: gst_app::AppSink,
    counters: Arc<Counters>,
    max_kbps: u32,
    bus: BusWatch,
    /// `auto`'s remaining camera candidates, tried when the current one delivers no frame.
    video_fallbacks: Mutex<VecDeque<VideoPlan>>,
    video_label: Mutex<String>,
    /// The capture pipeline (its own, so the camera can come and go): `camera.rs`.
    camera: Arc<Camera>,
}

impl PublishPipeline {
    /// Builds the pipeline (not started). Frames arrive on the returned receiver once
    /// [`start`](Self::start) is called; a full channel drops frames rather than blocking capture.
    pub fn new(
        settings: &PublishSettings,
    ) -> Result<(Self, mpsc::Receiver<EncodedFrame>), MediaError> {
        Self::build(settings, None)
    }

    /// Like [`new`](Self::new), with a video source the caller builds: `opener` is called for
    /// the first open and again for every reopen after the camera went away (sources roomcam
    /// does not know, and the hot-plug tests). `[video] source` is then not used.
    pub fn with_video_source(
        settings: &PublishSettings,
        opener: SourceOpener,
        label: &str,
    ) -> Result<(Self, mpsc::Receiver<EncodedFrame>), MediaError> {
        Self::build(settings, Some((opener, label.to_string())))
    }

    fn build(
        settings: &PublishSettings,
        source: Option<(SourceOpener, String)>,
    ) -> Result<(Self, mpsc::Receiver<EncodedFrame>), MediaError> {
        common::init()?;
        settings.video.validate()?;
        let pipeline = gst::Pipeline::with_name("publish");
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::channel(settings.channel_capacity.max(1));

        // The chooser decides whatever is `auto` (or checks an explicit camera against the
        // machine); explicit test sources and x264enc need no discovery.
        let needs_listing = (source.is_none()
            && !matches!(settings.video.source, VideoSource::Test))
            || settings.video.encoder == EncoderChoice::Auto
            || settings.audio.capture == AudioCapture::Auto;
        let listing = needs_listing.then(devices::discover);
        let (encoder, encoder_kind, video_sink, fallbacks, label, camera) = build_video(
            &pipeline,
            &settings.video,
            listing.as_ref(),
            source,
            &counters,
            tx.clone(),
        )?;
        build_audio(&pipeline, settings, listing.as_ref(), &counters, tx)?;

        let start_kbps = settings.video.max_bitrate_kbps;
        let bus = BusWatch::start(&pipeline)?;
        let me = Self {
            pipeline,
            encoder,
            encoder_kind,
            video_sink,
            counters,
            max_kbps: start_kbps,
            bus,
            video_fallbacks: Mutex::new(fallbacks),
            video_label: Mutex::new(label),
            camera,
        };
        me.apply_bitrate(start_kbps);
        Ok((me, rx))
    }

    /// Starts capture and encoding (waits at most a few seconds for the pipeline to run).
    ///
    /// When `auto` chose the camera and has more candidates, a camera that fails to start or
    /// delivers no frame within [`FIRST_FRAME_TIMEOUT`] is reported and replaced by the next
    /// candidate, the last one by the test pattern (so this may take a few seconds longer per
    /// silent camera, never unbounded).
    pub fn start(&self) -> Result<(), MediaError> {
        loop {
            let has_fallback = self
                .video_fallbacks
                .lock()
                .map(|f| !f.is_empty())
                .unwrap_or(false);
            let Err(e) = self.start_once(has_fallback) else {
                return Ok(());
            };
            let next = self
                .video_fallbacks
                .lock()
                .ok()
                .and_then(|mut f| f.pop_front());
            let Some(next) = next else {
                return Err(e);
            };
            tracing::warn!(
                error = %e,
                next = %next.label(),
                "video source auto: the camera does not work; trying the next candidate"
            );
            self.camera.set_opener(opener_for(next.clone()))?;
            if let Ok(mut l) = self.video_label.lock() {
                *l = next.label();
            }
            self.counters.raw_frames.store(0, Ordering::Relaxed);
        }
    }

    fn start_once(&self, first_frame_check: bool) -> Result<(), MediaError> {
        let camera_fail = |e: MediaError| {
            let _ = self.camera.pipeline.set_state(gst::State::Null);
            // The element's own error message says why; the bus thread has it within moments.
            Err(self
                .camera
                .bus
                .wait_error(Duration::from_secs(1))
                .unwrap_or(e))
        };
        let fail = |e: MediaError| {
            self.camera.stop();
            let _ = self.pipeline.set_state(gst::State::Null);
            Err(self.bus.wait_error(Duration::from_secs(1)).unwrap_or(e))
        };
        if first_frame_check {
            // Wait for the camera's first frame with our own (shorter) timeout: another
            // candidate is waiting.
            if self.camera.pipeline.set_state(gst::State::Playing).is_err() {
                return camera_fail(MediaError::UnusableElement {
                    element: "vsrc".into(),
                    reason: "the camera does not start".into(),
                });
            }
            let deadline = Instant::now() + FIRST_FRAME_TIMEOUT;
            while self.counters.raw_frames.load(Ordering::Relaxed) == 0 {
                if let Some(e) = self.camera.bus.error() {
                    return camera_fail(e);
                }
                if Instant::now() >= deadline {
                    return camera_fail(MediaError::Device(format!(
                        "video source auto: the camera delivered no frame within {} ms",
                        FIRST_FRAME_TIMEOUT.as_millis()
                    )));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        } else if self.camera.pipeline.set_state(gst::State::Playing).is_err() {
            // The last candidate (or the only source) does not open: the call goes on with the
            // card, and the watcher looks for the camera every second.
            tracing::warn!(error = ?self.camera.bus.error(), "the camera does not open; publishing the card until it does");
        }
        let sink = self.video_sink.clone();
        self.camera.watch(move || request_keyframe(&sink));
        if let Err(e) = common::change_state(&self.pipeline, gst::State::Playing) {
            return fail(e);
        }
        let running = common::running_time(self.pipeline.upcast_ref()).unwrap_or_default();
        let anchor = common::unix_ns().saturating_sub(running.as_nanos());
        self.counters
            .anchor_unix_ns
            .store(anchor as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Stops capture and releases the devices (the pipelines go to NULL).
    pub fn stop(&self) {
        self.camera.stop();
        let _ = self.pipeline.set_state(gst::State::Null);
    }

    /// Shows the camera's pictures (or the card) on a screen input too: the local
    /// picture-in-picture while publishing (a V4L2 camera opens only once).
    pub fn show_preview(&self, input: ScreenInput) {
        self.camera.set_preview(input);
    }

    /// Sets the video bitrate without restarting, clamped to [`MIN_BITRATE_KBPS`]..=max; returns
    /// the bitrate applied.
    pub fn set_bitrate_kbps(&self, kbps: u32) -> u32 {
        let kbps = kbps.clamp(MIN_BITRATE_KBPS, self.max_kbps);
        self.apply_bitrate(kbps);
        kbps
    }

    fn apply_bitrate(&self, kbps: u32) {
        match self.encoder_kind {
            EncoderKind::X264 => self.encoder.set_property("bitrate", kbps),
            EncoderKind::V4l2 => {
                let controls = gst::Structure::builder("controls")
                    .field("video_bitrate", (kbps * 1000) as i32)
                    .build();
                self.encoder.set_property("extra-controls", controls);
            }
        }
        self.counters.bitrate_kbps.store(kbps, Ordering::Relaxed);
    }

    /// Asks the encoder for a keyframe (with SPS/PPS) as soon as it can.
    pub fn request_keyframe(&self) {
        request_keyframe(&self.video_sink);
    }

    /// The first pipeline error, if one happened (the pipeline is then stopped).
    pub fn error(&self) -> Option<MediaError> {
        self.bus.error()
    }

    pub fn stats(&self) -> PublishStats {
        let c = &self.counters;
        PublishStats {
            encoder: self
                .encoder
                .factory()
                .map(|f| f.name().to_string())
                .unwrap_or_default(),
            video_source: self
                .video_label
                .lock()
                .map(|l| l.clone())
                .unwrap_or_default(),
            video_frames_sent: c.video.load(Ordering::Relaxed),
            audio_frames_sent: c.audio.load(Ordering::Relaxed),
            keyframes_sent: c.keyframes.load(Ordering::Relaxed),
            frames_dropped: c.dropped.load(Ordering::Relaxed),
            bitrate_kbps: c.bitrate_kbps.load(Ordering::Relaxed),
            encode_time_us_mean: c.encode.lock().ok().and_then(|e| e.mean_us()),
            showing_card: self.camera.showing_card(),
            camera_losses: self.camera.camera_losses(),
            card_frames: self.camera.card_frames(),
        }
    }
}

impl Drop for PublishPipeline {
    fn drop(&mut self) {
        self.camera.stop();
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Opens `plan`'s source afresh each time (the camera's reopen after it went away).
fn opener_for(plan: VideoPlan) -> SourceOpener {
    Arc::new(move || source_element(&plan))
}

fn request_keyframe(video_sink: &gst_app::AppSink) {
    // Travels upstream from the appsink through h264parse (which re-sends SPS/PPS) to the encoder.
    let event = gst_video::UpstreamForceKeyUnitEvent::builder()
        .all_headers(true)
        .build();
    video_sink.send_event(event);
}

/// The test pattern source.
fn test_source() -> Result<gst::Element, MediaError> {
    let src = make("videotestsrc", "vsrc", "test video source")?;
    src.set_property("is-live", true);
    src.set_property_from_str("pattern", "smpte");
    // Motion, so the encoder has real work and the bitrate means something.
    src.set_property("horizontal-speed", 4i32);
    Ok(src)
}

/// The source element (a bin for cameras: capture caps and, for MJPEG, the decoder) of `plan`.
fn source_element(plan: &VideoPlan) -> Result<gst::Element, MediaError> {
    match plan {
        VideoPlan::Test => test_source(),
        VideoPlan::V4l2 { .. } | VideoPlan::Libcamera { .. } => {
            let (factory, purpose) = match plan {
                VideoPlan::Libcamera { .. } => ("libcamerasrc", "libcamera capture"),
                _ => ("v4l2src", "V4L2 camera capture"),
            };
            if !common::exists(factory) {
                return Err(MediaError::MissingElement {
                    element: factory.into(),
                    purpose,
                });
            }
            let bin =
                gst::parse::bin_from_description_with_name(&plan.gst_description(), true, "vsrc")
                    .map_err(|e| MediaError::UnusableElement {
                    element: factory.into(),
                    reason: format!("{}: {e}", plan.label()),
                })?;
            Ok(bin.upcast())
        }
    }
}

/// The video source for the settings: `(element, stamped, further candidates)`. `auto` tries
/// the chooser's candidates in order (one that does not open is skipped with a warning, one that
/// opens but stays silent is replaced by the first-frame watcher), else the test pattern.
fn video_source(
    v: &VideoSettings,
    listing: Option<&Listing>,
) -> Result<(gst::Element, bool, VecDeque<VideoPlan>, String, VideoPlan), MediaError> {
    let empty = Listing::default();
    let listing = listing.unwrap_or(&empty);
    let want = v.wanted();
    let device_err = |e: devices::DeviceError| MediaError::Device(e.to_string());
    match &v.source {
        VideoSource::Test => Ok((
            test_source()?,
            true,
            VecDeque::new(),
            VideoPlan::Test.label(),
            VideoPlan::Test,
        )),
        VideoSource::V4l2(path) => {
            let plan =
                devices::plan_v4l2(listing, &path.to_string_lossy(), &want).map_err(device_err)?;
            tracing::info!(source = %plan.label(), "video source");
            Ok((
                source_element(&plan)?,
                false,
                VecDeque::new(),
                plan.label(),
                plan,
            ))
        }
        VideoSource::Libcamera => {
            let plan = devices::plan_libcamera(listing, &want).map_err(device_err)?;
            tracing::info!(source = %plan.label(), "video source");
            Ok((
                source_element(&plan)?,
                false,
                VecDeque::new(),
                plan.label(),
                plan,
            ))
        }
        VideoSource::Auto => {
            let mut candidates: VecDeque<VideoPlan> =
                devices::choose(listing, &want).video.into_iter().collect();
            while let Some(plan) = candidates.pop_front() {
                match source_element(&plan).and_then(|src| common::probe(&src).map(|()| src)) {
                    Ok(src) => {
                        tracing::info!(source = %plan.label(), further = candidates.len(), "video source auto");
                        // The test pattern is the last resort after the cameras.
                        candidates.push_back(VideoPlan::Test);
                        let label = plan.label();
                        return Ok((src, false, candidates, label, plan));
                    }
                    Err(e) => {
                        tracing::warn!(source = %plan.label(), error = %e, "video source auto: candidate does not open; trying the next")
                    }
                }
            }
            tracing::warn!("video source auto: no camera answers, publishing the test pattern");
            Ok((
                test_source()?,
                true,
                VecDeque::new(),
                VideoPlan::Test.label(),
                VideoPlan::Test,
            ))
        }
    }
}

fn choose_encoder(
    choice: EncoderChoice,
    fps: u32,
    plan: Option<&EncoderPlan>,
) -> Result<(gst::Element, EncoderKind), MediaError> {
    let v4l2 = || -> Result<gst::Element, MediaError> {
        let enc = make("v4l2h264enc", "venc", "hardware H.264 encoder")?;
        common::probe(&enc)?;
        let controls = gst::Structure::builder("controls")
            .field("h264_i_frame_period", (2 * fps) as i32)
            .field("repeat_sequence_header", 1i32)
            .build();
        enc.set_property("extra-controls", controls);
        Ok(enc)
    };
    let x264 = || -> Result<gst::Element, MediaError> {
        let enc = make("x264enc", "venc", "software H.264 encoder")?;
        enc.set_property_from_str("tune", "zerolatency");
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let preset = match plan {
            Some(EncoderPlan::X264enc { speed_preset, .. }) => speed_preset.clone(),
            _ => devices::choose::x264_preset(cores).to_string(),
        };
        enc.set_property_from_str("speed-preset", &preset);
        enc.set_property("key-int-max", 2 * fps);
        enc.set_property("bframes", 0u32);
        enc.set_property("byte-stream", true);
        Ok(enc)
    };
    match choice {
        EncoderChoice::V4l2h264enc => Ok((v4l2()?, EncoderKind::V4l2)),
        EncoderChoice::X264enc => Ok((x264()?, EncoderKind::X264)),
        // The chooser found no M2M H.264 encoder (or the size is beyond it): software.
        EncoderChoice::Auto if matches!(plan, Some(EncoderPlan::X264enc { .. })) => {
            Ok((x264()?, EncoderKind::X264))
        }
        EncoderChoice::Auto => match common::exists("v4l2h264enc").then(v4l2) {
            Some(Ok(enc)) => Ok((enc, EncoderKind::V4l2)),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "v4l2h264enc present but unusable, using x264enc");
                Ok((x264()?, EncoderKind::X264))
            }
            None => Ok((x264()?, EncoderKind::X264)),
        },
    }
}

fn capsfilter(name: &str, caps: gst::Caps) -> Result<gst::Element, MediaError> {
    let f = make("capsfilter", name, "caps filter")?;
    f.set_property("caps", caps);
    Ok(f)
}

fn running_time_of(sample: &gst::Sample, pts: gst::ClockTime) -> Duration {
    let running = sample
        .segment()
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.to_running_time(pts))
        .unwrap_or(pts);
    Duration::from_nanos(running.nseconds())
}

type VideoParts = (
    gst::Element,
    EncoderKind,
    gst_app::AppSink,
    VecDeque<VideoPlan>,
    String,
    Arc<Camera>,
);

fn build_video(
    pipeline: &gst::Pipeline,
    v: &VideoSettings,
    listing: Option<&Listing>,
    source: Option<(SourceOpener, String)>,
    counters: &Arc<Counters>,
    tx: mpsc::Sender<EncodedFrame>,
) -> Result<VideoParts, MediaError> {
    let (opener, stamped, fallbacks, label) = match source {
        Some((opener, label)) => (opener, false, VecDeque::new(), label),
        None => {
            let (src, stamped, fallbacks, label, plan) = video_source(v, listing)?;
            // The element the chooser already built (and probed) opens first; reopens build anew.
            let first = Mutex::new(Some(src));
            let opener: SourceOpener =
                Arc::new(move || match first.lock().ok().and_then(|mut f| f.take()) {
                    Some(src) => Ok(src),
                    None => source_element(&plan),
                });
            (opener, stamped, fallbacks, label)
        }
    };
    let raw_caps = super::camera::raw_caps(v.width, v.height, v.fps);
    let feed = gst_app::AppSrc::builder()
        .name("vfeed")
        .caps(&raw_caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_buffers(2)
        .block(false)
        .leaky_type(gst_app::AppLeakyType::Upstream)
        .build();
    let c = counters.clone();
    let camera = Camera::build(opener, feed.clone(), v.width, v.height, v.fps, move || {
        c.raw_frames.fetch_add(1, Ordering::Relaxed);
    })?;
    let raw = capsfilter("vraw", raw_caps)?;
    let queue = make("queue", "vqueue", "capture/encode decoupling")?;
    queue.set_property("max-size-buffers", 2u32);
    queue.set_property("max-size-bytes", 0u32);
    queue.set_property("max-size-time", 0u64);
    queue.set_property_from_str("leaky", "downstream");
    let encoder_plan = listing.map(|l| devices::choose(l, &v.wanted()).encoder);
    let (encoder, kind) = choose_encoder(v.encoder, v.fps, encoder_plan.as_ref())?;
    let mut enc_caps = gst::Caps::builder("video/x-h264")
        .field("profile", "constrained-baseline")
        .field("stream-format", "byte-stream");
    if kind == EncoderKind::V4l2 {
        // The Pi's encoder negotiates only with a level in the caps.
        enc_caps = enc_caps.field("level", "4");
    }
    let enc_filter = capsfilter("venccaps", enc_caps.build())?;
    let parse = make("h264parse", "vparse", "H.264 parser")?;
    parse.set_property("config-interval", -1i32);
    let out_caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .field("profile", "constrained-baseline")
        .build();
    let out = capsfilter("vout", out_caps)?;
    let sink = gst_app::AppSink::builder()
        .name("vsink")
        .sync(false)
        .max_buffers(8)
        .drop(true)
        .build();

    let chain = [
        feed.upcast_ref(),
        &raw,
        &queue,
        &encoder,
        &enc_filter,
        &parse,
        &out,
        sink.upcast_ref(),
    ];
    pipeline
        .add_many(chain)
        .map_err(|e| MediaError::Init(format!("cannot add video elements: {e}")))?;
    common::link_all(&chain)?;

    if stamped {
        add_stamp_probe(&raw, v, counters)?;
    }
    add_encode_timer(&encoder, counters)?;

    let c = counters.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let pts = buffer.pts().ok_or(gst::FlowError::Error)?;
                let running = running_time_of(&sample, pts);
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let frame = EncodedFrame {
                    kind: FrameKind::Video,
                    data: map.as_slice().to_vec(),
                    pts: running,
                    duration: buffer
                        .duration()
                        .map(|d| Duration::from_nanos(d.nseconds()))
                        .unwrap_or_default(),
                    keyframe,
                    capture_unix_ms: c.capture_unix_ms(sink.upcast_ref(), running),
                };
                if keyframe {
                    c.need_keyframe.store(false, Ordering::Relaxed);
                } else if c.need_keyframe.load(Ordering::Relaxed) {
                    // A frame was dropped: the ones after it are useless until the next keyframe.
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    return Ok(gst::FlowSuccess::Ok);
                }
                match tx.try_send(frame) {
                    Ok(()) => {
                        c.video.fetch_add(1, Ordering::Relaxed);
                        if keyframe {
                            c.keyframes.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        if !c.need_keyframe.swap(true, Ordering::Relaxed) {
                            request_keyframe(sink);
                        }
                    }
                }
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok((encoder, kind, sink, fallbacks, label, camera))
}

/// Draws the frame stamp into each raw frame, in place, before the encoder.
fn add_stamp_probe(
    raw: &gst::Element,
    v: &VideoSettings,
    counters: &Arc<Counters>,
) -> Result<(), MediaError> {
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, v.width, v.height)
        .fps(gst::Fraction::new(v.fps as i32, 1))
        .build()
        .map_err(|e| MediaError::Init(format!("video info: {e}")))?;
    let (width, height) = (v.width as usize, v.height as usize);
    if !stamp::fits(width, height) {
        tracing::warn!(
            width,
            height,
            "picture too small for the frame stamp; not stamped"
        );
        return Ok(());
    }
    let pad = raw
        .static_pad("src")
        .ok_or_else(|| MediaError::Init("capsfilter without a src pad".into()))?;
    let c = counters.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
        let Some(buffer) = probe.buffer_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        // A live source's segment starts at 0: its pts is the running time.
        let running = buffer
            .pts()
            .map(|p| Duration::from_nanos(p.nseconds()))
            .unwrap_or_default();
        let capture_ms = pad
            .parent_element()
            .and_then(|e| c.capture_unix_ms(&e, running))
            .unwrap_or(0) as u32;
        let frame = c.frame_number.fetch_add(1, Ordering::Relaxed) as u16;
        let buffer = buffer.make_mut();
        if let Ok(mut vf) = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &info) {
            let stride = vf.plane_stride()[0] as usize;
            if let Ok(luma) = vf.plane_data_mut(0) {
                let _ = stamp::write(luma, stride, width, height, Stamp { frame, capture_ms });
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

/// Notes when each raw frame enters the encoder and when its encoded frame leaves.
fn add_encode_timer(encoder: &gst::Element, counters: &Arc<Counters>) -> Result<(), MediaError> {
    let pad = |name: &str| {
        encoder
            .static_pad(name)
            .ok_or_else(|| MediaError::Init(format!("encoder without a {name} pad")))
    };
    let c = counters.clone();
    pad("sink")?.add_probe(gst::PadProbeType::BUFFER, move |_p, probe| {
        if let (Some(pts), Ok(mut t)) = (probe.buffer().and_then(|b| b.pts()), c.encode.lock()) {
            t.enter(pts.nseconds());
        }
        gst::PadProbeReturn::Ok
    });
    let c = counters.clone();
    pad("src")?.add_probe(gst::PadProbeType::BUFFER, move |_p, probe| {
        if let (Some(_), Ok(mut t)) = (probe.buffer(), c.encode.lock()) {
            t.leave();
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

fn build_audio(
    pipeline: &gst::Pipeline,
    settings: &PublishSettings,
    listing: Option<&Listing>,
    counters: &Arc<Counters>,
    tx: mpsc::Sender<EncodedFrame>,
) -> Result<(), MediaError> {
    let a = &settings.audio;
    let test = || -> Result<gst::Element, MediaError> {
        let src = make("audiotestsrc", "asrc", "test audio source")?;
        src.set_property("is-live", true);
        src.set_property_from_str("wave", "sine");
        src.set_property("freq", a.test_tone_hz);
        src.set_property("volume", 0.3f64);
        // 20 ms buffers, one Opus frame each: no extra buffering before the encoder.
        src.set_property("samplesperbuffer", 960i32);
        Ok(src)
    };
    let alsa = |pcm: &str| -> Result<gst::Element, MediaError> {
        let src = make("alsasrc", "asrc", "ALSA capture")?;
        src.set_property("device", pcm);
        Ok(src)
    };
    let src = match &a.capture {
        AudioCapture::None => return Ok(()),
        AudioCapture::Test => test()?,
        AudioCapture::Alsa(pcm) => alsa(pcm)?,
        AudioCapture::Auto => {
            // The chooser's microphone (USB, HAT), else ALSA's default, else the test tone.
            let chosen = listing.and_then(|l| devices::choose(l, &settings.video.wanted()).capture);
            let open = |pcm: &str| alsa(pcm).and_then(|s| common::probe(&s).map(|()| s));
            let picked = chosen.as_deref().map(|pcm| {
                open(pcm).inspect_err(|e| {
                    tracing::warn!(pcm, error = %e, "audio capture auto: the chosen microphone does not open")
                })
            });
            match picked {
                Some(Ok(src)) => {
                    tracing::info!(pcm = chosen.as_deref().unwrap_or(""), "audio capture auto");
                    src
                }
                _ => match open("default") {
                    Ok(src) => src,
                    Err(e) => {
                        tracing::warn!(error = %e, "audio capture auto: no microphone answers, publishing the test tone");
                        test()?
                    }
                },
            }
        }
    };
    let convert = make("audioconvert", "aconvert", "audio format conversion")?;
    let resample = make("audioresample", "aresample", "audio resampling")?;
    let raw = capsfilter(
        "araw",
        gst::Caps::builder("audio/x-raw")
            .field("rate", 48_000i32)
            .field("channels", 1i32)
            .build(),
    )?;
    let enc = make("opusenc", "aenc", "Opus encoder")?;
    enc.set_property_from_str("frame-size", "20");
    enc.set_property("bitrate", a.bitrate_bps.clamp(6_000, 510_000) as i32);
    enc.set_property_from_str("audio-type", "voice");
    set_if_present(&enc, "inband-fec", "true");
    let sink = gst_app::AppSink::builder()
        .name("asink")
        .sync(false)
        .max_buffers(16)
        .drop(true)
        .build();
    let chain = [&src, &convert, &resample, &raw, &enc, sink.upcast_ref()];
    pipeline
        .add_many(chain)
        .map_err(|e| MediaError::Init(format!("cannot add audio elements: {e}")))?;
    common::link_all(&chain)?;

    let c = counters.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                let pts = buffer.pts().ok_or(gst::FlowError::Error)?;
                let running = running_time_of(&sample, pts);
                let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                let frame = EncodedFrame {
                    kind: FrameKind::Audio,
                    data: map.as_slice().to_vec(),
                    pts: running,
                    duration: buffer
                        .duration()
                        .map(|d| Duration::from_nanos(d.nseconds()))
                        .unwrap_or(Duration::from_millis(20)),
                    keyframe: true,
                    capture_unix_ms: c.capture_unix_ms(sink.upcast_ref(), running),
                };
                match tx.try_send(frame) {
                    Ok(()) => c.audio.fetch_add(1, Ordering::Relaxed),
                    Err(_) => c.dropped.fetch_add(1, Ordering::Relaxed),
                };
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(())
}

/// The seed's local preview: the camera (as `[video] source` chooses it) shown on the display
/// sink, without encoding or sending anything. For use before publishing: a V4L2 camera opens
/// once, so while a stream is published the picture-in-picture comes from the display (issue 8).
pub struct PreviewPipeline {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
}

impl PreviewPipeline {
    /// Builds and starts the preview. With `DisplaySink::None` frames are counted, not shown.
    pub fn start(
        video: &VideoSettings,
        display: super::settings::DisplaySink,
    ) -> Result<Self, MediaError> {
        use super::settings::DisplaySink;
        common::init()?;
        video.validate()?;
        let pipeline = gst::Pipeline::with_name("preview");
        let listing = (!matches!(video.source, VideoSource::Test)).then(devices::discover);
        let (src, _, _, label, _) = video_source(video, listing.as_ref())?;
        let convert = make("videoconvert", "pconvert", "video format conversion")?;
        let scale = make("videoscale", "pscale", "video scaling")?;
        let caps = make("capsfilter", "pcaps", "caps filter")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", video.width as i32)
                .field("height", video.height as i32)
                .build(),
        );
        let sink = match display.resolve(DisplaySink::desktop_present()) {
            DisplaySink::Window => make("autovideosink", "psink", "desktop video window")?,
            DisplaySink::Kms => {
                let s = make("kmssink", "psink", "KMS/DRM display output")?;
                s.set_property("skip-vsync", true);
                s
            }
            DisplaySink::None | DisplaySink::Auto => {
                make("fakesink", "psink", "preview without a display")?
            }
        };
        pipeline
            .add_many([&src, &convert, &scale, &caps, &sink])
            .map_err(|e| MediaError::Init(format!("cannot add preview elements: {e}")))?;
        common::link_all(&[&src, &convert, &scale, &caps, &sink])?;
        let frames = Arc::new(AtomicU64::new(0));
        if let Some(pad) = sink.static_pad("sink") {
            let f = frames.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                f.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        if let Err(e) = common::change_state(&pipeline, gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(e);
        }
        tracing::info!(source = %label, "preview started");
        Ok(PreviewPipeline { pipeline, frames })
    }

    /// Pictures shown (or counted) so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

impl Drop for PreviewPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A camera that opens but never delivers a frame (a live appsrc nobody feeds) is replaced
    /// by the next candidate once the first-frame timeout passes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_camera_is_replaced_by_the_next_candidate() {
        let mut settings = PublishSettings::default();
        settings.video.source = VideoSource::Test;
        settings.video.encoder = EncoderChoice::X264enc;
        settings.video.width = 320;
        settings.video.height = 240;
        settings.audio.capture = AudioCapture::None;
        let (publisher, mut rx) = PublishPipeline::new(&settings).expect("builds");
        let silent = gst_app::AppSrc::builder()
            .name("vsrc")
            .is_live(true)
            .format(gst::Format::Time)
            .caps(
                &gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, 320, 240)
                    .fps(gst::Fraction::new(30, 1))
                    .build()
                    .unwrap()
                    .to_caps()
                    .unwrap(),
            )
            .build();
        let capture = &publisher.camera.pipeline;
        let convert = capture.by_name("vconvert").unwrap();
        let old = capture.by_name("vsrc").unwrap();
        old.unlink(&convert);
        capture.remove(&old).unwrap();
        capture.add(&silent).unwrap();
        silent.link(&convert).unwrap();
        *publisher.video_fallbacks.lock().unwrap() = VecDeque::from([VideoPlan::Test]);

        let started = Instant::now();
        publisher.start().expect("starts on the next candidate");
        let waited = started.elapsed();
        assert!(waited >= FIRST_FRAME_TIMEOUT, "{waited:?}");
        assert!(
            waited < FIRST_FRAME_TIMEOUT + Duration::from_secs(6),
            "{waited:?}"
        );
        let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the next candidate delivers")
            .expect("channel open");
        assert_eq!(frame.kind, FrameKind::Video);
        assert!(
            publisher
                .camera
                .pipeline
                .by_name("vsrc")
                .unwrap()
                .factory()
                .unwrap()
                .name()
                == "videotestsrc"
        );
        assert!(publisher.error().is_none(), "{:?}", publisher.error());
        assert_eq!(publisher.stats().video_source, "test pattern");
        publisher.stop();
    }
}

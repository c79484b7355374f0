//! The playing pipeline for one remote stream: H.264 access units and Opus packets in (with
//! the sender's timing), decoded to the display and the speaker, with the stats the status
//! endpoint and the tests read.
//!
//! ```text
//! video: appsrc -> h264parse -> decoder -> videoconvert -> display sink (none: I420 appsink;
//!        on a [`Screen`](super::Screen): the same appsink, each picture passed on to it)
//! audio: appsrc -> opusdec -> audioconvert -> audioresample -> audio sink (none: S16 appsink)
//!        with a speaker: S16 appsink (synced) -> the session's [`Speaker`] mix
//! ```
//!
//! Both appsrcs live in one pipeline, so they share its clock and base time; both streams are
//! placed on it through one [`Playout`] (one offset), which keeps them in sync. The jitter
//! allowance is [`PlaySettings::playout_delay`], reported as the appsrcs' latency so the sinks
//! play each frame that long after its placed time; the engine owns reordering and loss.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::MediaError;
use super::common::{self, BusWatch, make, set_if_present};
use super::h264;
use super::playout::{Playout, Track};
use super::screen::ScreenInput;
use super::settings::{AudioPlayback, DisplaySink, PlaySettings};
use super::speaker::{Speaker, SpeakerInput};
use super::stamp;
use super::stats::{self, FrameOrder, LatencyWindow};
use super::tone;

const VIDEO_QUEUE_BYTES: u64 = 4 * 1024 * 1024;
const AUDIO_QUEUE_BYTES: u64 = 64 * 1024;
/// Decoded audio kept for the tone estimate (0.5 s at 48 kHz).
const TONE_SAMPLES: usize = 24_000;
const LAG_SAMPLES: usize = 256;

/// What happened to a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Queued for decoding.
    Queued,
    /// Video held back: the player waits for a keyframe (the engine should send a PLI).
    WaitingForKeyframe,
    /// Dropped: it arrived after its deadline (audio) or the queue was full (video; the player
    /// now waits for a keyframe and the engine should send a PLI).
    Dropped,
}

/// Player counters for the status endpoint and the tests.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlayStats {
    pub video_frames_decoded: u64,
    pub audio_frames_decoded: u64,
    pub width: u32,
    pub height: u32,
    /// Frame number read from the last stamped picture.
    pub last_frame_number: Option<u16>,
    /// Decoded pictures with a readable stamp, and ones without (not test video, or corrupt).
    pub stamped_frames: u64,
    pub unstamped_frames: u64,
    pub frames_out_of_order: u64,
    pub frames_skipped: u64,
    /// Capture (stamp) to decoded-and-due, over the recent frames.
    pub latency_ms_p50: Option<u32>,
    pub latency_ms_p95: Option<u32>,
    /// Whether the first decoded picture was the first keyframe let in (`None` before one).
    pub first_frame_was_keyframe: Option<bool>,
    /// Video access units held back while waiting for a keyframe.
    pub video_held_for_keyframe: u64,
    pub late_frames: u64,
    pub dropped_frames: u64,
    /// Audio packets dropped for arriving after their deadline (the decoder conceals them).
    pub audio_frames_dropped: u64,
    pub playout_adjustments: u64,
    /// Median (video render lag - audio render lag) in ms at the `none` sinks: how far video
    /// plays behind the audio with the same sender timestamp.
    pub av_offset_ms: Option<f64>,
    /// Frequency of the decoded audio (`none` playback only).
    pub audio_tone_hz: Option<f64>,
    /// Median time from a picture's placed running time to its arrival at the `none` sink.
    pub video_render_lag_ms: Option<f64>,
    /// The same for decoded audio at the `none` sink.
    pub audio_render_lag_ms: Option<f64>,
    /// The latency the pipeline configured (jitter allowance + decoder + sink).
    pub pipeline_latency_ms: Option<f64>,
}

#[derive(Default)]
struct State {
    stats: PlayStats,
    order: FrameOrder,
    latency: Option<LatencyWindow>,
    playout: Option<Playout>,
    waiting_for_keyframe: bool,
    /// SPS/PPS seen on the stream, put in front of a first IDR that comes without them.
    parameter_sets: h264::ParameterSets,
    first_keyframe_at: Option<gst::ClockTime>,
    video_lag_ns: VecDeque<i64>,
    audio_lag_ns: VecDeque<i64>,
    tone: VecDeque<f32>,
}

fn push_bounded<T>(ring: &mut VecDeque<T>, v: T, cap: usize) {
    if ring.len() >= cap {
        ring.pop_front();
    }
    ring.push_back(v);
}

fn median(v: &VecDeque<i64>) -> Option<i64> {
    let mut s: Vec<i64> = v.iter().copied().collect();
    s.sort_unstable();
    s.get(s.len() / 2).copied()
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> Result<MutexGuard<'_, State>, gst::FlowError> {
    shared.lock().map_err(|_| gst::FlowError::Error)
}

/// Decodes and plays one remote stream.
pub struct PlayPipeline {
    pipeline: gst::Pipeline,
    video_src: gst_app::AppSrc,
    audio_src: gst_app::AppSrc,
    state: Shared,
    decoder: String,
    bus: BusWatch,
    speaker_input: Option<Arc<SpeakerInput>>,
    /// The screen input pictures go to (taken on `stop`, which takes the picture off screen).
    screen: ScreenSlot,
}

type ScreenSlot = Arc<Mutex<Option<ScreenInput>>>;

impl PlayPipeline {
    /// Builds the pipeline (not started), with its own audio output (`settings.playback`).
    pub fn new(settings: &PlaySettings) -> Result<Self, MediaError> {
        Self::build(settings, None, None)
    }

    /// Builds the pipeline (not started) with its decoded audio going into `speaker`'s mix
    /// (`settings.playback` is then the speaker's business, not this stream's). The audio
    /// stats (`audio_frames_decoded`, `audio_tone_hz`, render lag) are kept as with `none`.
    pub fn with_speaker(settings: &PlaySettings, speaker: &Speaker) -> Result<Self, MediaError> {
        Self::build(settings, Some(Arc::new(speaker.add_input()?)), None)
    }

    /// Builds a pipeline whose pictures go to a [`Screen`](super::Screen) input (the display
    /// setting is then not used; the stats are those of the `none` sink).
    pub fn with_screen(settings: &PlaySettings, input: ScreenInput) -> Result<Self, MediaError> {
        Self::build(settings, None, Some(input))
    }

    /// Both: audio into the session's speaker mix, pictures onto the session's screen.
    pub fn with_speaker_and_screen(
        settings: &PlaySettings,
        speaker: &Speaker,
        input: ScreenInput,
    ) -> Result<Self, MediaError> {
        Self::build(settings, Some(Arc::new(speaker.add_input()?)), Some(input))
    }

    fn build(
        settings: &PlaySettings,
        speaker_input: Option<Arc<SpeakerInput>>,
        input: Option<ScreenInput>,
    ) -> Result<Self, MediaError> {
        common::init()?;
        let pipeline = gst::Pipeline::with_name("play");
        let state: Shared = Arc::new(Mutex::new(State {
            latency: Some(LatencyWindow::new(256)),
            playout: Some(Playout::new(settings.playout_delay)),
            waiting_for_keyframe: true,
            ..State::default()
        }));
        let latency_ns = settings.playout_delay.as_nanos() as i64;
        let screen: ScreenSlot = Arc::new(Mutex::new(None));
        let display = match input {
            Some(i) => {
                if let Ok(mut slot) = screen.lock() {
                    *slot = Some(i);
                }
                Display::Screen(screen.clone())
            }
            None => Display::Sink(settings.display),
        };
        let (video_src, decoder) = build_video(&pipeline, display, latency_ns, &state)?;
        let audio_src = build_audio(
            &pipeline,
            &settings.playback,
            speaker_input.clone(),
            latency_ns,
            &state,
        )?;
        let bus = BusWatch::start(&pipeline)?;
        Ok(Self {
            pipeline,
            video_src,
            audio_src,
            state,
            decoder,
            bus,
            screen,
            speaker_input,
        })
    }

    /// Starts the pipeline; frames may be pushed from then on.
    pub fn start(&self) -> Result<(), MediaError> {
        // A live pipeline only completes PLAYING once data flows: do not wait for it here.
        self.pipeline.set_state(gst::State::Playing).map_err(|_| {
            let _ = self.pipeline.set_state(gst::State::Null);
            self.bus
                .wait_error(Duration::from_secs(1))
                .unwrap_or(MediaError::StateChange {
                    pipeline: "play".into(),
                    state: "PLAYING",
                    timeout_ms: 0,
                })
        })?;
        Ok(())
    }

    /// Stops decoding and releases the display and the speaker (or leaves the speaker's mix).
    pub fn stop(&self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        let input = self.screen.lock().ok().and_then(|mut s| s.take());
        drop(input);
        if let Some(i) = &self.speaker_input {
            i.remove();
        }
    }

    /// The decoder element in use (`avdec_h264`, `v4l2h264dec`).
    pub fn decoder(&self) -> &str {
        &self.decoder
    }

    fn now(&self) -> Result<Duration, MediaError> {
        if let Some(e) = self.bus.error() {
            return Err(e);
        }
        common::running_time(self.pipeline.upcast_ref())
            .ok_or_else(|| MediaError::NotRunning("play".into()))
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, MediaError> {
        self.state
            .lock()
            .map_err(|_| MediaError::NotRunning("play (state poisoned)".into()))
    }

    /// Pushes one H.264 Annex-B access unit. `pts` comes from the sender's RTP timestamp (on the
    /// same timeline as the audio's), not from the arrival time. Input before the first keyframe
    /// (IDR) is held back.
    pub fn push_video(&self, data: Vec<u8>, pts: Duration) -> Result<PushOutcome, MediaError> {
        let now = self.now()?;
        let mut st = self.state()?;
        let idr = h264::contains_idr(&data);
        if st.waiting_for_keyframe {
            // Only while waiting: once started, the parser keeps the sets (no scan per frame).
            st.parameter_sets.learn(&data);
            if !idr {
                st.stats.video_held_for_keyframe += 1;
                return Ok(PushOutcome::WaitingForKeyframe);
            }
        }
        // Start only where the decoder can: an IDR whose SPS/PPS are known. h264parse drops an
        // IDR without them, and after it every picture, while the player would think it had
        // started and never ask for another keyframe (a browser's first keyframe can reach a
        // late player without them).
        let data = if st.waiting_for_keyframe {
            match st.parameter_sets.decodable_idr(data) {
                Some(d) => d,
                None => {
                    st.stats.video_held_for_keyframe += 1;
                    return Ok(PushOutcome::WaitingForKeyframe);
                }
            }
        } else {
            data
        };
        if self.video_src.current_level_bytes() + data.len() as u64 > VIDEO_QUEUE_BYTES {
            st.stats.dropped_frames += 1;
            st.waiting_for_keyframe = true;
            return Ok(PushOutcome::Dropped);
        }
        let Some(playout) = st.playout.as_mut() else {
            return Err(MediaError::NotRunning("play".into()));
        };
        let placed = playout.place(Track::Video, pts, now);
        if placed.late {
            // Still decoded (later pictures refer to it); the sink drops it if it is too late.
            st.stats.late_frames += 1;
        }
        let at = gst::ClockTime::from_nseconds(placed.running_time.as_nanos() as u64);
        if st.waiting_for_keyframe {
            st.waiting_for_keyframe = false;
            st.first_keyframe_at.get_or_insert(at);
        }
        drop(st);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(at);
            if !idr {
                b.set_flags(gst::BufferFlags::DELTA_UNIT);
            }
        }
        self.video_src
            .push_buffer(buffer)
            .map_err(|e| MediaError::NotRunning(format!("play (video appsrc: {e:?})")))?;
        Ok(PushOutcome::Queued)
    }

    /// Pushes one Opus packet; `pts` as for [`push_video`](Self::push_video). A packet that
    /// arrives after its deadline is dropped (the decoder conceals it).
    pub fn push_audio(&self, data: Vec<u8>, pts: Duration) -> Result<PushOutcome, MediaError> {
        let now = self.now()?;
        let mut st = self.state()?;
        let Some(playout) = st.playout.as_mut() else {
            return Err(MediaError::NotRunning("play".into()));
        };
        let placed = playout.place(Track::Audio, pts, now);
        if placed.late {
            st.stats.late_frames += 1;
            st.stats.dropped_frames += 1;
            st.stats.audio_frames_dropped += 1;
            return Ok(PushOutcome::Dropped);
        }
        drop(st);
        let mut buffer = gst::Buffer::from_mut_slice(data);
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(
                placed.running_time.as_nanos() as u64,
            ));
        }
        self.audio_src
            .push_buffer(buffer)
            .map_err(|e| MediaError::NotRunning(format!("play (audio appsrc: {e:?})")))?;
        Ok(PushOutcome::Queued)
    }

    /// Changes the jitter allowance while playing (the engine's adaptive jitter buffer sets it
    /// from the jitter it measures); the sinks' latency follows at once.
    pub fn set_playout_delay(&self, delay: Duration) {
        if let Ok(mut st) = self.state.lock()
            && let Some(p) = st.playout.as_mut()
        {
            p.set_delay(delay);
        }
        let ns = delay.as_nanos() as i64;
        self.video_src.set_min_latency(ns);
        self.audio_src.set_min_latency(ns);
        if self.pipeline.recalculate_latency().is_err() {
            tracing::debug!("latency not recalculated (pipeline not running yet)");
        }
    }

    /// The first pipeline error, if one happened (the pipeline is then stopped).
    pub fn error(&self) -> Option<MediaError> {
        self.bus.error()
    }

    pub fn stats(&self) -> PlayStats {
        let Ok(st) = self.state.lock() else {
            return PlayStats::default();
        };
        let mut s = st.stats.clone();
        if let Some(l) = &st.latency {
            s.latency_ms_p50 = l.percentile(50.0);
            s.latency_ms_p95 = l.percentile(95.0);
        }
        if let Some(p) = &st.playout {
            s.playout_adjustments = p.adjustments;
        }
        s.last_frame_number = st.order.last;
        s.frames_out_of_order = st.order.out_of_order;
        s.frames_skipped = st.order.skipped;
        s.video_render_lag_ms = median(&st.video_lag_ns).map(|v| v as f64 / 1e6);
        s.audio_render_lag_ms = median(&st.audio_lag_ns).map(|v| v as f64 / 1e6);
        let mut query = gst::query::Latency::new();
        if self.pipeline.query(&mut query) {
            let (_live, min, _max) = query.result();
            s.pipeline_latency_ms = Some(min.nseconds() as f64 / 1e6);
        }
        if let (Some(v), Some(a)) = (median(&st.video_lag_ns), median(&st.audio_lag_ns)) {
            s.av_offset_ms = Some((v - a) as f64 / 1e6);
        }
        if st.tone.len() >= TONE_SAMPLES / 2 {
            let samples: Vec<f32> = st.tone.iter().copied().collect();
            s.audio_tone_hz = tone::estimate_hz(&samples, 48_000, 0.01);
        }
        s
    }
}

impl Drop for PlayPipeline {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(i) = &self.speaker_input {
            i.remove();
        }
    }
}

fn appsrc(name: &str, caps: gst::Caps, max_bytes: u64, latency_ns: i64) -> gst_app::AppSrc {
    gst_app::AppSrc::builder()
        .name(name)
        .caps(&caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(false)
        .max_bytes(max_bytes)
        .block(false)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .min_latency(latency_ns)
        .build()
}

/// A live sink adds `processing-deadline` (20 ms by default) to the latency, for the work
/// upstream of it; here that work (decoding) is budgeted in the playout delay instead.
fn no_processing_deadline(sink: &gst::Element) {
    if sink.find_property("processing-deadline").is_some() {
        sink.set_property("processing-deadline", 0u64);
    }
}

fn choose_decoder() -> Result<gst::Element, MediaError> {
    if common::exists("v4l2h264dec") {
        match make("v4l2h264dec", "vdec", "hardware H.264 decoder")
            .and_then(|d| common::probe(&d).map(|()| d))
        {
            Ok(dec) => return Ok(dec),
            Err(e) => tracing::warn!(error = %e, "v4l2h264dec unusable, using avdec_h264"),
        }
    }
    let dec = make("avdec_h264", "vdec", "software H.264 decoder")?;
    // Frame threads would add a frame of latency per thread; slices do not.
    set_if_present(&dec, "thread-type", "slice");
    // A picture with missing references is dropped, never shown.
    set_if_present(&dec, "output-corrupt", "false");
    Ok(dec)
}

/// Reads size, stamp and latency from a decoded picture.
fn observe_picture(st: &mut State, buffer: &gst::BufferRef, caps: Option<&gst::CapsRef>) {
    st.stats.video_frames_decoded += 1;
    let Some(info) = caps.and_then(|c| gst_video::VideoInfo::from_caps(c).ok()) else {
        return;
    };
    st.stats.width = info.width();
    st.stats.height = info.height();
    let luma_first = matches!(
        info.format(),
        gst_video::VideoFormat::I420
            | gst_video::VideoFormat::Yv12
            | gst_video::VideoFormat::Nv12
            | gst_video::VideoFormat::Nv21
            | gst_video::VideoFormat::Gray8
    );
    let read = luma_first
        .then(|| gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok())
        .flatten()
        .and_then(|f| {
            let stride = f.plane_stride()[0] as usize;
            let luma = f.plane_data(0).ok()?;
            stamp::read(luma, stride, info.width() as usize, info.height() as usize)
        });
    match read {
        Some(s) => {
            st.stats.stamped_frames += 1;
            st.order.observe(s.frame);
            if let (Some(ms), Some(l)) = (
                stats::latency_ms(s.capture_ms, common::unix_ms()),
                st.latency.as_mut(),
            ) {
                l.push(ms);
            }
        }
        None => st.stats.unstamped_frames += 1,
    }
}

fn render_lag_ns(element: &gst::Element, buffer: &gst::BufferRef) -> Option<i64> {
    let now = common::running_time(element)?;
    let pts = buffer.pts()?;
    Some(now.as_nanos() as i64 - pts.nseconds() as i64)
}

/// Where decoded pictures go.
enum Display {
    Sink(DisplaySink),
    Screen(ScreenSlot),
}

fn build_video(
    pipeline: &gst::Pipeline,
    display: Display,
    latency_ns: i64,
    state: &Shared,
) -> Result<(gst_app::AppSrc, String), MediaError> {
    let caps = gst::Caps::builder("video/x-h264")
        .field("stream-format", "byte-stream")
        .field("alignment", "au")
        .build();
    let src = appsrc("vsrc", caps, VIDEO_QUEUE_BYTES, latency_ns);
    let parse = make("h264parse", "vparse", "H.264 parser")?;
    let decoder = choose_decoder()?;
    // Whether the first picture out of the decoder is the first keyframe let in: watched at
    // the decoder, before a sink may drop a late picture (a late joiner's catch-up does).
    if let Some(pad) = decoder.static_pad("src") {
        let st = state.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer()
                && let Ok(mut s) = st.lock()
                && s.stats.first_frame_was_keyframe.is_none()
            {
                s.stats.first_frame_was_keyframe =
                    Some(buffer.pts().is_some() && buffer.pts() == s.first_keyframe_at);
            }
            gst::PadProbeReturn::Ok
        });
    }
    let decoder_name = decoder
        .factory()
        .map(|f| f.name().to_string())
        .unwrap_or_default();
    let convert = make("videoconvert", "vconvert", "video format conversion")?;
    let (display, screen) = match display {
        Display::Sink(d) => (d.resolve(DisplaySink::desktop_present()), None),
        Display::Screen(slot) => (DisplaySink::None, Some(slot)),
    };
    let mut tail: Vec<gst::Element> = Vec::new();
    let mut appsink = None;
    match display {
        DisplaySink::None | DisplaySink::Auto => {
            let filter = make("capsfilter", "vrawcaps", "caps filter")?;
            filter.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            );
            let sink = gst_app::AppSink::builder()
                .name("vsink")
                .sync(true)
                .max_buffers(4)
                .drop(true)
                .build();
            // A picture more than 40 ms past due is not shown (counted as not decoded).
            sink.set_property("max-lateness", 40_000_000i64);
            // No preroll: audio must not wait for the first video keyframe (nor video for audio).
            sink.set_property("async", false);
            no_processing_deadline(sink.upcast_ref());
            tail.push(filter);
            tail.push(sink.clone().upcast());
            appsink = Some(sink);
        }
        DisplaySink::Window => {
            let sink = make("autovideosink", "vsink", "desktop video window")?;
            set_if_present(&sink, "async-handling", "true");
            tail.push(sink);
        }
        DisplaySink::Kms => {
            let sink = make("kmssink", "vsink", "KMS/DRM display output")?;
            // Keep the screen's mode (the plane scales the picture) and let the atomic driver
            // pace the flips (skip-vsync avoids waiting for vblank twice): docs/media.md.
            set_if_present(&sink, "force-modesetting", "false");
            set_if_present(&sink, "skip-vsync", "true");
            sink.set_property("async", false);
            no_processing_deadline(&sink);
            tail.push(sink);
        }
    }
    let mut chain: Vec<&gst::Element> = vec![src.upcast_ref(), &parse, &decoder, &convert];
    chain.extend(tail.iter());
    pipeline
        .add_many(chain.iter().copied())
        .map_err(|e| MediaError::Init(format!("cannot add video elements: {e}")))?;
    common::link_all(&chain)?;

    if let Some(sink) = appsink {
        let st = state.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let lag = render_lag_ns(sink.upcast_ref(), buffer);
                    let mut st = lock(&st)?;
                    observe_picture(&mut st, buffer, sample.caps());
                    if let Some(lag) = lag {
                        push_bounded(&mut st.video_lag_ns, lag, LAG_SAMPLES);
                    }
                    drop(st);
                    if let Some(slot) = &screen
                        && let Ok(input) = slot.lock()
                        && let Some(input) = input.as_ref()
                    {
                        input.push(&sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    } else {
        // A real display: count and read the stamp as pictures leave the decoder.
        let pad = decoder
            .static_pad("src")
            .ok_or_else(|| MediaError::Init("decoder without a src pad".into()))?;
        let st = state.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, probe| {
            if let (Some(buffer), Ok(mut st)) = (probe.buffer(), st.lock()) {
                observe_picture(&mut st, buffer, pad.current_caps().as_deref());
            }
            gst::PadProbeReturn::Ok
        });
    }
    Ok((src, decoder_name))
}

fn build_audio(
    pipeline: &gst::Pipeline,
    playback: &AudioPlayback,
    speaker: Option<Arc<SpeakerInput>>,
    latency_ns: i64,
    state: &Shared,
) -> Result<gst_app::AppSrc, MediaError> {
    let caps = gst::Caps::builder("audio/x-opus")
        .field("channel-mapping-family", 0i32)
        .field("channels", 1i32)
        .field("rate", 48_000i32)
        .build();
    let src = appsrc("asrc", caps, AUDIO_QUEUE_BYTES, latency_ns);
    let dec = make("opusdec", "adec", "Opus decoder")?;
    set_if_present(&dec, "plc", "true");
    let convert = make("audioconvert", "aconvert", "audio format conversion")?;
    let resample = make("audioresample", "aresample", "audio resampling")?;
    let mut tail: Vec<gst::Element> = Vec::new();
    let mut appsink = None;
    // With a speaker the decoded audio leaves through the `none` appsink, at its due time.
    let own_output = if speaker.is_some() {
        &AudioPlayback::None
    } else {
        playback
    };
    match own_output {
        AudioPlayback::None => {
            let filter = make("capsfilter", "arawcaps", "caps filter")?;
            filter.set_property(
                "caps",
                gst::Caps::builder("audio/x-raw")
                    .field("format", "S16LE")
                    .field("rate", 48_000i32)
                    .field("channels", 1i32)
                    .build(),
            );
            let sink = gst_app::AppSink::builder()
                .name("asink")
                .sync(true)
                .max_buffers(16)
                .drop(true)
                .build();
            sink.set_property("async", false);
            no_processing_deadline(sink.upcast_ref());
            tail.push(filter);
            tail.push(sink.clone().upcast());
            appsink = Some(sink);
        }
        AudioPlayback::Auto => {
            let sink = make("autoaudiosink", "asink", "default audio output")?;
            set_if_present(&sink, "async-handling", "true");
            tail.push(sink);
        }
        AudioPlayback::Alsa(pcm) => {
            let sink = make("alsasink", "asink", "ALSA playback")?;
            sink.set_property("device", pcm.as_str());
            // 40 ms ring buffer in 10 ms periods: the default 200 ms would be audible delay.
            sink.set_property("buffer-time", 40_000i64);
            sink.set_property("latency-time", 10_000i64);
            sink.set_property("async", false);
            no_processing_deadline(&sink);
            tail.push(sink);
        }
    }
    let mut chain: Vec<&gst::Element> = vec![src.upcast_ref(), &dec, &convert, &resample];
    chain.extend(tail.iter());
    pipeline
        .add_many(chain.iter().copied())
        .map_err(|e| MediaError::Init(format!("cannot add audio elements: {e}")))?;
    common::link_all(&chain)?;

    let st = state.clone();
    if let Some(sink) = appsink {
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let lag = render_lag_ns(sink.upcast_ref(), buffer);
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut st = lock(&st)?;
                    st.stats.audio_frames_decoded += 1;
                    if let Some(lag) = lag {
                        push_bounded(&mut st.audio_lag_ns, lag, LAG_SAMPLES);
                    }
                    for s in tone::first_channel_s16(map.as_slice(), 1) {
                        push_bounded(&mut st.tone, s, TONE_SAMPLES);
                    }
                    drop(st);
                    drop(map);
                    if let Some(input) = &speaker {
                        input.push_buffer(buffer.to_owned());
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    } else {
        let pad = dec
            .static_pad("src")
            .ok_or_else(|| MediaError::Init("opusdec without a src pad".into()))?;
        pad.add_probe(gst::PadProbeType::BUFFER, move |_pad, _probe| {
            if let Ok(mut st) = st.lock() {
                st.stats.audio_frames_decoded += 1;
            }
            gst::PadProbeReturn::Ok
        });
    }
    Ok(src)
}

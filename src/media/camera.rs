//! The publisher's camera, decoupled from its encoder so the camera can go away and come back
//! while the call stays up. Capture runs in its own small pipeline ending at an appsink; its
//! raw pictures are handed (not copied) to the encoder pipeline's `appsrc`. A watcher thread
//! notices when the camera stops delivering (an error, EOS, a vanished device, or silence),
//! feeds a "Camera unavailable" card at the configured size and rate instead, reopens the
//! source every [`REOPEN_EVERY`], and switches back (asking for a keyframe) when pictures come.
//!
//! ```text
//! capture: source -> videoconvert -> videoscale -> I420 WxH@fps -> appsink --.
//!                                             card (watcher, when stale) ----+-> appsrc "vfeed" (encoder pipeline)
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::common::{self, BusWatch, make};
use super::screen::ScreenInput;

/// The text of the card published while the camera is gone.
pub const CAMERA_CARD_TEXT: &str = "Camera unavailable";
/// How often a vanished camera is looked for again.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// Silence after which the camera counts as gone (at least three frame intervals).
const STALL_AFTER: Duration = Duration::from_secs(1);

/// Builds a fresh camera source element each time it is called (the first open and every
/// reopen). The element may be a bin; its src pad delivers raw video.
pub type SourceOpener = Arc<dyn Fn() -> Result<gst::Element, MediaError> + Send + Sync>;

/// Raw picture caps of the published video.
pub(crate) fn raw_caps(width: u32, height: u32, fps: u32) -> gst::Caps {
    gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", width as i32)
        .field("height", height as i32)
        .field("framerate", gst::Fraction::new(fps as i32, 1))
        .build()
}

/// Renders a card: `text` centred on a dark background, one I420 picture.
pub fn render_card(text: &str, width: u32, height: u32) -> Result<gst::Sample, MediaError> {
    common::init()?;
    let pipeline = gst::Pipeline::with_name("card");
    let src = make("videotestsrc", "card-bg", "card background")?;
    src.set_property("num-buffers", 1i32);
    src.set_property_from_str("pattern", "solid-color");
    src.set_property("foreground-color", 0xff30_3030u32);
    let caps = make("capsfilter", "card-caps", "caps filter")?;
    caps.set_property("caps", raw_caps(width, height, 30));
    let overlay = make("textoverlay", "card-text", "card text")?;
    overlay.set_property("text", text);
    overlay.set_property_from_str("valignment", "center");
    overlay.set_property_from_str("halignment", "center");
    overlay.set_property("font-desc", format!("Sans {}", (height / 20).max(6)));
    overlay.set_property("shaded-background", false);
    let convert = make("videoconvert", "card-convert", "card conversion")?;
    let out = make("capsfilter", "card-out", "caps filter")?;
    out.set_property("caps", raw_caps(width, height, 30));
    let sink = gst_app::AppSink::builder()
        .name("card-sink")
        .sync(false)
        .build();
    let chain = [&src, &caps, &overlay, &convert, &out, sink.upcast_ref()];
    pipeline
        .add_many(chain)
        .map_err(|e| MediaError::Init(format!("cannot add card elements: {e}")))?;
    common::link_all(&chain)?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|_| MediaError::StateChange {
            pipeline: "card".into(),
            state: "PLAYING",
            timeout_ms: 0,
        })?;
    let sample = sink.try_pull_preroll(gst::ClockTime::from_seconds(5));
    let _ = pipeline.set_state(gst::State::Null);
    sample.ok_or_else(|| MediaError::Init("the card was not rendered".into()))
}

/// What the watcher and the capture callback share.
struct Shared {
    feed: gst_app::AppSrc,
    preview: Mutex<Option<ScreenInput>>,
    /// Milliseconds since `epoch` of the last camera picture (0: none yet).
    last_frame_ms: AtomicU64,
    epoch: Instant,
    showing_card: AtomicBool,
    card_frames: AtomicU64,
    camera_losses: AtomicU64,
    stop: AtomicBool,
    /// The last pts handed to the encoder (ns; camera and card pictures interleave at a switch
    /// and must still rise). Held while a picture is stamped and pushed: the camera's thread and
    /// the watcher's both push around a switch, and a pts taken by one thread but pushed after
    /// the other's later one went out backwards (seen under load in `media_camera_hotplug`).
    last_pts: Mutex<u64>,
}

impl Shared {
    fn since_last_frame(&self) -> Option<Duration> {
        let last = self.last_frame_ms.load(Ordering::Relaxed);
        (last != 0).then(|| {
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last))
        })
    }

    fn show(&self, sample: &gst::Sample) {
        if let Ok(p) = self.preview.lock()
            && let Some(p) = p.as_ref()
        {
            p.push(sample);
        }
    }
}

/// The capture pipeline and its watcher.
pub(crate) struct Camera {
    pub(crate) pipeline: gst::Pipeline,
    pub(crate) bus: BusWatch,
    opener: Mutex<SourceOpener>,
    shared: Arc<Shared>,
    card: gst::Sample,
    fps: u32,
    watcher: Mutex<Option<JoinHandle<()>>>,
}

impl Camera {
    /// Builds the capture pipeline around `opener`'s source, feeding `feed`; `on_frame` runs for
    /// every camera picture (the first-frame check counts them).
    pub(crate) fn build(
        opener: SourceOpener,
        feed: gst_app::AppSrc,
        width: u32,
        height: u32,
        fps: u32,
        on_frame: impl Fn() + Send + Sync + 'static,
    ) -> Result<Arc<Camera>, MediaError> {
        let pipeline = gst::Pipeline::with_name("capture");
        let src = named_source(&opener)?;
        let convert = make("videoconvert", "vconvert", "video format conversion")?;
        let scale = make("videoscale", "vscale", "video scaling")?;
        let caps = make("capsfilter", "vcapcaps", "caps filter")?;
        caps.set_property("caps", raw_caps(width, height, fps));
        let sink = gst_app::AppSink::builder()
            .name("vcapture")
            .sync(false)
            .max_buffers(2)
            .drop(true)
            .build();
        let chain = [&src, &convert, &scale, &caps, sink.upcast_ref()];
        pipeline
            .add_many(chain)
            .map_err(|e| MediaError::Init(format!("cannot add capture elements: {e}")))?;
        common::link_all(&chain)?;
        let shared = Arc::new(Shared {
            feed,
            preview: Mutex::new(None),
            last_frame_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            showing_card: AtomicBool::new(false),
            card_frames: AtomicU64::new(0),
            camera_losses: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            last_pts: Mutex::new(0),
        });
        let sh = shared.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    on_frame();
                    let ms = (sh.epoch.elapsed().as_millis() as u64).max(1);
                    sh.last_frame_ms.store(ms, Ordering::Relaxed);
                    if let Some(buffer) = sample.buffer() {
                        let at = capture_time_on_feed(&sample, s.upcast_ref(), &sh.feed);
                        sh.push(buffer, at);
                    }
                    sh.show(&sample);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let card = render_card(CAMERA_CARD_TEXT, width, height)?;
        let bus = BusWatch::start(&pipeline)?;
        Ok(Arc::new(Camera {
            pipeline,
            bus,
            opener: Mutex::new(opener),
            shared,
            card,
            fps: fps.max(1),
            watcher: Mutex::new(None),
        }))
    }

    /// Replaces the source (the capture pipeline is stopped first; not restarted).
    pub(crate) fn set_opener(&self, opener: SourceOpener) -> Result<(), MediaError> {
        if let Ok(mut o) = self.opener.lock() {
            *o = opener;
        }
        self.reopen_source()
    }

    fn reopen_source(&self) -> Result<(), MediaError> {
        let _ = self.pipeline.set_state(gst::State::Null);
        let convert = self
            .pipeline
            .by_name("vconvert")
            .ok_or_else(|| MediaError::Init("no vconvert in the capture pipeline".into()))?;
        if let Some(old) = self.pipeline.by_name("vsrc") {
            old.unlink(&convert);
            let _ = self.pipeline.remove(&old);
            let _ = old.set_state(gst::State::Null);
        }
        let opener = self
            .opener
            .lock()
            .map(|o| o.clone())
            .map_err(|_| MediaError::Init("camera opener poisoned".into()))?;
        let new = named_source(&opener)?;
        self.pipeline
            .add(&new)
            .map_err(|e| MediaError::Init(format!("cannot add the video source: {e}")))?;
        common::link_all(&[&new, &convert])?;
        if let Ok(mut e) = self.bus.error.lock() {
            *e = None;
        }
        Ok(())
    }

    /// Starts watching (after the first successful start): from now on a camera that goes away
    /// is replaced by the card and looked for again.
    pub(crate) fn watch(self: &Arc<Self>, on_back: impl Fn() + Send + 'static) {
        let Ok(mut w) = self.watcher.lock() else {
            return;
        };
        if w.is_some() {
            return;
        }
        let me = Arc::downgrade(self);
        let interval = Duration::from_secs(1) / self.fps;
        let stall = STALL_AFTER.max(interval * 3);
        *w = std::thread::Builder::new()
            .name("camera-watch".into())
            .spawn(move || {
                let mut last_try: Option<Instant> = None;
                loop {
                    std::thread::sleep(interval);
                    let Some(cam) = me.upgrade() else { return };
                    let sh = &cam.shared;
                    if sh.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let silent = sh.since_last_frame().is_none_or(|d| d >= stall);
                    let failed = cam.bus.error().is_some();
                    let showing = sh.showing_card.load(Ordering::Relaxed);
                    if (silent || failed) && !showing {
                        tracing::warn!(error = ?cam.bus.error(), "camera unavailable: publishing the card and looking for it every second");
                        sh.showing_card.store(true, Ordering::Relaxed);
                        sh.camera_losses.fetch_add(1, Ordering::Relaxed);
                        // The last camera picture was just now: start looking at once.
                        last_try = None;
                    } else if showing && !silent && !failed {
                        tracing::info!("camera back: publishing it again");
                        sh.showing_card.store(false, Ordering::Relaxed);
                        on_back();
                        continue;
                    }
                    if !sh.showing_card.load(Ordering::Relaxed) {
                        continue;
                    }
                    if let Some(b) = cam.card.buffer() {
                        let now = common::running_time(sh.feed.upcast_ref())
                            .map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64));
                        sh.push(b, now);
                        sh.card_frames.fetch_add(1, Ordering::Relaxed);
                    }
                    sh.show(&cam.card);
                    if last_try.is_none_or(|t| t.elapsed() >= REOPEN_EVERY) {
                        last_try = Some(Instant::now());
                        cam.try_reopen();
                    }
                }
            })
            .ok();
    }

    fn try_reopen(&self) {
        if let Err(e) = self.reopen_source() {
            tracing::debug!(error = %e, "camera still unavailable");
            return;
        }
        // A device that is not there fails here (READY opens it); its error is on the bus.
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            let _ = self.pipeline.set_state(gst::State::Null);
            tracing::debug!("camera still unavailable (does not open)");
        }
    }

    pub(crate) fn set_preview(&self, input: ScreenInput) {
        if let Ok(mut p) = self.shared.preview.lock() {
            *p = Some(input);
        }
    }

    pub(crate) fn showing_card(&self) -> bool {
        self.shared.showing_card.load(Ordering::Relaxed)
    }

    pub(crate) fn card_frames(&self) -> u64 {
        self.shared.card_frames.load(Ordering::Relaxed)
    }

    pub(crate) fn camera_losses(&self) -> u64 {
        self.shared.camera_losses.load(Ordering::Relaxed)
    }

    /// Stops the watcher and the capture (the device is released).
    pub(crate) fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let t = self.watcher.lock().ok().and_then(|mut w| w.take());
        if let Some(t) = t
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Ok(mut p) = self.shared.preview.lock() {
            *p = None;
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The opener's element, named `vsrc` (how the capture pipeline finds it to replace it).
fn named_source(opener: &SourceOpener) -> Result<gst::Element, MediaError> {
    let src = opener()?;
    if src.name() != "vsrc" && src.parent().is_none() {
        src.set_property("name", "vsrc");
    }
    Ok(src)
}

/// A camera picture's capture time on the encoder pipeline's timeline: both pipelines run on
/// the system clock, so running time + base time is one absolute clock time. `None` before the
/// encoder pipeline runs (the appsrc then stamps it on arrival).
fn capture_time_on_feed(
    sample: &gst::Sample,
    capture: &gst::Element,
    feed: &gst_app::AppSrc,
) -> Option<gst::ClockTime> {
    if feed.current_state() != gst::State::Playing {
        return None;
    }
    let pts = sample.buffer()?.pts()?;
    let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
    let running = segment.to_running_time(pts)?;
    let absolute = running + capture.base_time()?;
    absolute.checked_sub(feed.base_time()?)
}

impl Shared {
    /// Hands a picture to the encoder pipeline: a new header on the same memory, with `pts`
    /// (kept rising), or none for the appsrc to stamp.
    fn push(&self, buffer: &gst::BufferRef, pts: Option<gst::ClockTime>) {
        let Ok(mut last) = self.last_pts.lock() else {
            return;
        };
        let pts = pts.map(|p| {
            let ns = p.nseconds().max(*last + 1_000_000);
            *last = ns;
            gst::ClockTime::from_nseconds(ns)
        });
        let mut b = buffer.copy();
        if let Some(m) = b.get_mut() {
            m.set_pts(pts);
            m.set_dts(gst::ClockTime::NONE);
            m.set_duration(gst::ClockTime::NONE);
        }
        // Still under the lock: pictures leave in the order of their pts.
        let _ = self.feed.push_buffer(b);
    }
}

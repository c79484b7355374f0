//! [`Screen`]: the one display pipeline of a session. Remote participants' decoded pictures and
//! the local preview come in through [`ScreenInput`]s (added and removed while it runs); a
//! `compositor` places them as [`super::layout`] says; with nobody to show, an idle card (plain
//! background, a line of text the appliance sets) is on screen instead of black.
//!
//! ```text
//! idle: videotestsrc solid -> WxH@fps -> textoverlay --.
//! input i: appsrc (do-timestamp, leaky) ---------------+-> compositor -> BGRx WxH@fps -> appsink "tap"
//! output: appsrc -> videoconvert -> kmssink | autovideosink      (its own pipeline, restartable)
//! ```
//!
//! The output is a pipeline of its own so a sink that cannot open (a KMS connector that is not
//! connected, a screen switched off at boot) never stops the compositor: with `kms` a watcher
//! polls the connector (DRM sysfs, every second) and starts the output when it becomes
//! connected, and stops it when it goes away or the sink fails. `none` keeps the last composed
//! picture for the tests ([`Screen::snapshot`]). See docs/media.md, "Screen".

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::MediaError;
use super::common::{self, make, set_if_present};
use super::display::{self, KmsTarget};
use super::layout;
use super::settings::DisplaySink;

/// How often the `kms` watcher looks at the connector.
pub const CONNECTOR_POLL: Duration = Duration::from_secs(1);

/// What a [`Screen`] is built from (`[display]` and the picture rate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenSettings {
    pub sink: DisplaySink,
    /// `[display] connector`: a DRM connector name (`HDMI-A-1`, `Virtual-1`); `None` = auto.
    pub connector: Option<String>,
    /// `[display] mode`: `(width, height, refresh)`; `None` = the connector's preferred mode.
    pub mode: Option<(u32, u32, Option<u32>)>,
    /// Output size for `none` and `window`, and for `kms` until a connector tells its mode.
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

impl Default for ScreenSettings {
    fn default() -> Self {
        ScreenSettings {
            sink: DisplaySink::Auto,
            connector: None,
            mode: None,
            width: 1280,
            height: 720,
            fps: 30,
        }
    }
}

/// Counters for the status endpoint and the tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScreenStats {
    /// The sink in use after `auto`: `kms`, `window`, `none`.
    pub sink: String,
    /// Whether the output sink is running (`kms`: a connector is connected and the sink opened).
    pub output_running: bool,
    /// The KMS connector shown on, when known.
    pub connector: Option<String>,
    pub width: u32,
    pub height: u32,
    pub participants: usize,
    /// Participants on screen now (a picture arrived; at most four).
    pub shown: usize,
    pub preview: bool,
    /// Composed pictures.
    pub frames_composed: u64,
    /// Pictures that reached the display sink (kmssink or the window), over all its starts.
    pub frames_displayed: u64,
    /// Times the output was (re)started.
    pub output_starts: u64,
    pub idle_text: String,
}

/// The kind of a screen input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Participant,
    Preview,
}

struct Slot {
    id: u64,
    role: Role,
    pad: gst::Pad,
    src: gst_app::AppSrc,
    /// The picture size last pushed (0x0 before the first).
    size: (u32, u32),
}

struct Inner {
    pipeline: gst::Pipeline,
    compositor: gst::Element,
    out_caps: gst::Element,
    idle_pad: gst::Pad,
    idle_text: gst::Element,
    sink: DisplaySink,
    fps: u32,
    slots: Mutex<Vec<Slot>>,
    next_id: AtomicU64,
    size: Mutex<(u32, u32)>,
    last: Mutex<Option<gst::Sample>>,
    composed: AtomicU64,
    /// Buffers that reached the output sink's input (shared with each output started).
    displayed: Arc<AtomicU64>,
    output: Mutex<Option<Output>>,
    output_starts: AtomicU64,
    connector: Mutex<Option<String>>,
    text: Mutex<String>,
    stop: AtomicBool,
}

/// The session's display. Cheap to clone (one pipeline behind it).
#[derive(Clone)]
pub struct Screen {
    inner: Arc<Inner>,
    _watch: Arc<WatchThread>,
}

struct WatchThread(Option<JoinHandle<()>>, Weak<Inner>);

impl Drop for WatchThread {
    fn drop(&mut self) {
        if let Some(inner) = self.1.upgrade() {
            inner.stop.store(true, Ordering::Relaxed);
        }
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

impl Screen {
    /// Builds and starts the screen with the idle card showing `idle_text`.
    pub fn start(settings: &ScreenSettings, idle_text: &str) -> Result<Screen, MediaError> {
        Self::start_inner(settings, idle_text, None)
    }

    /// [`start`](Self::start) with `on_idle_picture` run in the idle source's thread for each
    /// of its pictures before the compositor sees it (tests: a slow source).
    #[cfg(test)]
    fn start_with_idle_probe(
        settings: &ScreenSettings,
        idle_text: &str,
        on_idle_picture: impl Fn() + Send + Sync + 'static,
    ) -> Result<Screen, MediaError> {
        Self::start_inner(settings, idle_text, Some(Box::new(on_idle_picture)))
    }

    fn start_inner(
        settings: &ScreenSettings,
        idle_text: &str,
        on_idle_picture: Option<Box<dyn Fn() + Send + Sync>>,
    ) -> Result<Screen, MediaError> {
        common::init()?;
        let sink = settings.sink.resolve(DisplaySink::desktop_present());
        let (width, height) = match (sink, settings.mode) {
            (DisplaySink::Kms, Some((w, h, _))) => (w, h),
            (DisplaySink::Kms, None) => display::find_connector(settings.connector.as_deref())
                .and_then(|c| c.preferred_mode())
                .unwrap_or((settings.width, settings.height)),
            _ => (settings.width, settings.height),
        };
        let (width, height) = (width.max(16) & !1, height.max(16) & !1);
        let fps = settings.fps.clamp(1, 60);
        let pipeline = gst::Pipeline::with_name("screen");
        let compositor = make("compositor", "screen-mix", "composing the screen")?;
        compositor.set_property_from_str("background", "black");
        // Not `ignore-inactive-pads`: with it the compositor ends the stream (EOS) when its first
        // deadline passes before the idle picture arrived (a slow start: seen under emulation),
        // and the screen stays dark for good. Live inputs that send nothing are skipped at each
        // deadline anyway.
        // Inputs arrive when they arrive (decoders of other pipelines): wait at most a frame.
        compositor.set_property("latency", 1_000_000_000u64 / u64::from(fps));
        skip_when_behind(&compositor, fps)?;

        let bg = make("videotestsrc", "screen-idle", "idle card background")?;
        bg.set_property("is-live", true);
        bg.set_property_from_str("pattern", "solid-color");
        // A dark slate blue: the card is visibly not a black (dead) screen.
        bg.set_property("foreground-color", 0xff26_3040u32);
        let bg_caps = capsfilter(
            "screen-idle-caps",
            raw_caps("I420", width, height, Some(fps)),
        )?;
        let text = make("textoverlay", "screen-idle-text", "idle card text")?;
        text.set_property("text", idle_text);
        text.set_property_from_str("valignment", "center");
        text.set_property_from_str("halignment", "center");
        text.set_property("font-desc", format!("Sans {}", (height / 24).max(8)));
        text.set_property("shaded-background", false);
        let convert = make("videoconvert", "screen-convert", "screen format conversion")?;
        let out_caps = capsfilter("screen-caps", raw_caps("BGRx", width, height, Some(fps)))?;
        let tap = gst_app::AppSink::builder()
            .name("screen-tap")
            .sync(false)
            .max_buffers(2)
            .drop(true)
            .build();
        tap.set_property("async", false);
        pipeline
            .add_many([
                &bg,
                &bg_caps,
                &text,
                &compositor,
                &convert,
                &out_caps,
                tap.upcast_ref(),
            ])
            .map_err(|e| MediaError::Init(format!("cannot add screen elements: {e}")))?;
        common::link_all(&[&bg, &bg_caps, &text])?;
        common::link_all(&[&compositor, &convert, &out_caps, tap.upcast_ref()])?;
        let idle_pad = compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Init("compositor gave no sink pad".into()))?;
        text.static_pad("src")
            .ok_or_else(|| MediaError::Init("textoverlay without a src pad".into()))?
            .link(&idle_pad)
            .map_err(|_| MediaError::Link {
                from: "screen-idle-text".into(),
                to: "screen-mix".into(),
            })?;
        idle_pad.set_property("zorder", 0u32);
        place(&idle_pad, 0, 0, width, height);
        if let (Some(f), Some(pad)) = (on_idle_picture, text.static_pad("src")) {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                f();
                gst::PadProbeReturn::Ok
            });
        }

        let inner = Arc::new(Inner {
            pipeline,
            compositor,
            out_caps,
            idle_pad,
            idle_text: text,
            sink,
            fps,
            slots: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            size: Mutex::new((width, height)),
            last: Mutex::new(None),
            composed: AtomicU64::new(0),
            output: Mutex::new(None),
            output_starts: AtomicU64::new(0),
            displayed: Arc::new(AtomicU64::new(0)),
            connector: Mutex::new(None),
            text: Mutex::new(idle_text.to_string()),
            stop: AtomicBool::new(false),
        });
        let weak = Arc::downgrade(&inner);
        tap.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let Some(inner) = weak.upgrade() else {
                        return Err(gst::FlowError::Flushing);
                    };
                    inner.composed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(out) = inner.output.lock()
                        && let Some(o) = out.as_ref()
                    {
                        o.push(&sample);
                    }
                    if let Ok(mut last) = inner.last.lock() {
                        *last = Some(sample);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        if let Err(e) = common::change_state(&inner.pipeline, gst::State::Playing) {
            let _ = inner.pipeline.set_state(gst::State::Null);
            return Err(e);
        }
        if sink == DisplaySink::Window {
            let out = Output::start(
                &OutputKind::Window,
                width,
                height,
                fps,
                inner.displayed.clone(),
            )?;
            inner.output_starts.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut o) = inner.output.lock() {
                *o = Some(out);
            }
        }
        let watch = if sink == DisplaySink::Kms {
            let weak = Arc::downgrade(&inner);
            let target = KmsTarget {
                connector: settings.connector.clone(),
                mode: settings.mode,
            };
            let t = std::thread::Builder::new()
                .name("screen-kms".into())
                .spawn(move || kms_watch(weak, target))
                .map_err(|e| MediaError::Init(format!("cannot start the screen watcher: {e}")))?;
            Some(t)
        } else {
            None
        };
        tracing::info!(sink = ?sink, width, height, fps, "screen started");
        Ok(Screen {
            _watch: Arc::new(WatchThread(watch, Arc::downgrade(&inner))),
            inner,
        })
    }

    /// Adds a remote participant's picture (placed after the ones there are).
    pub fn add_participant(&self) -> Result<ScreenInput, MediaError> {
        self.add(Role::Participant)
    }

    /// Adds the local preview (picture-in-picture, on top).
    pub fn add_preview(&self) -> Result<ScreenInput, MediaError> {
        self.add(Role::Preview)
    }

    fn add(&self, role: Role) -> Result<ScreenInput, MediaError> {
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let src = gst_app::AppSrc::builder()
            .name(format!("screen-in-{id}"))
            .is_live(true)
            // No latency of its own and no bound: appsrc's default reports max 0, which
            // against the live idle source's frame makes the compositor's latency impossible
            // ("max 0 < min 200 ms", every query) and its timing undefined.
            .min_latency(0)
            .max_latency(-1)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(2)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        inner
            .pipeline
            .add(&src)
            .map_err(|e| MediaError::Init(format!("cannot add a screen input: {e}")))?;
        let pad = inner
            .compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Init("compositor gave no sink pad".into()))?;
        let linked = src
            .static_pad("src")
            .map(|p| p.link(&pad).is_ok())
            .unwrap_or(false);
        if !linked {
            inner.compositor.release_request_pad(&pad);
            let _ = inner.pipeline.remove(&src);
            return Err(MediaError::Link {
                from: src.name().to_string(),
                to: "screen-mix".into(),
            });
        }
        pad.set_property(
            "zorder",
            match role {
                Role::Participant => 1u32,
                Role::Preview => 10u32,
            },
        );
        // Hidden until its first picture (and a place in the layout) arrive.
        pad.set_property("alpha", 0.0f64);
        src.sync_state_with_parent()
            .map_err(|_| MediaError::StateChange {
                pipeline: "screen".into(),
                state: "PLAYING",
                timeout_ms: 0,
            })?;
        if let Ok(mut slots) = inner.slots.lock() {
            slots.push(Slot {
                id,
                role,
                pad,
                src: src.clone(),
                size: (0, 0),
            });
        }
        inner.relayout();
        Ok(ScreenInput {
            id,
            src,
            inner: Arc::downgrade(&self.inner),
            caps: Mutex::new(None),
        })
    }

    /// Sets the idle card's text (shown when there is no participant).
    pub fn set_idle_text(&self, text: &str) {
        let inner = &self.inner;
        let Ok(mut t) = inner.text.lock() else {
            return;
        };
        if *t != text {
            tracing::info!(text, "screen: idle card");
            *t = text.to_string();
            inner.idle_text.set_property("text", text);
        }
    }

    /// The last composed picture (BGRx) as `(width, height, stride, bytes)`.
    pub fn snapshot(&self) -> Option<Snapshot> {
        let sample = self.inner.last.lock().ok()?.clone()?;
        let info = gst_video::VideoInfo::from_caps(sample.caps()?).ok()?;
        let buffer = sample.buffer()?;
        let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
        Some(Snapshot {
            width: info.width(),
            height: info.height(),
            stride: frame.plane_stride()[0] as usize,
            data: frame.plane_data(0).ok()?.to_vec(),
        })
    }

    /// The rectangles in use now: participants in order, then the preview.
    pub fn layout(&self) -> (Vec<layout::Rect>, Option<layout::Rect>) {
        self.inner.current_layout()
    }

    pub fn stats(&self) -> ScreenStats {
        let inner = &self.inner;
        let (width, height) = inner.size.lock().map(|s| *s).unwrap_or_default();
        let (participants, shown, preview) = inner
            .slots
            .lock()
            .map(|s| {
                let p = || s.iter().filter(|s| s.role == Role::Participant);
                (
                    p().count(),
                    p().take(layout::MAX_PARTICIPANTS)
                        .filter(|s| s.size != (0, 0))
                        .count(),
                    s.iter().any(|s| s.role == Role::Preview),
                )
            })
            .unwrap_or_default();
        ScreenStats {
            sink: match inner.sink {
                DisplaySink::Kms => "kms",
                DisplaySink::Window => "window",
                _ => "none",
            }
            .into(),
            output_running: inner.output.lock().map(|o| o.is_some()).unwrap_or(false),
            connector: inner.connector.lock().ok().and_then(|c| c.clone()),
            width,
            height,
            participants,
            shown,
            preview,
            frames_composed: inner.composed.load(Ordering::Relaxed),
            frames_displayed: inner.displayed.load(Ordering::Relaxed),
            output_starts: inner.output_starts.load(Ordering::Relaxed),
            idle_text: inner.text.lock().map(|t| t.clone()).unwrap_or_default(),
        }
    }
}

/// A compositor that cannot keep up (a large mode on a slow CPU) must skip pictures, not fall
/// behind: its live timeline would lag further every second, and the screen would show the
/// call as it was seconds or minutes ago (the emulated Pi of the QEMU test composing 1080p at
/// half its frame rate showed the camera-unavailable card 30 s after the camera was back).
/// Nothing downstream syncs to the clock (the output takes pictures as they come), so nothing
/// sends QoS upstream; this probe on the compositor's output does, as a synced sink would, for
/// every picture that leaves more than `QOS_SLACK_FRAMES` frames after its time. The compositor
/// then skips (does not compose) the pictures whose time has passed.
const QOS_SLACK_FRAMES: u64 = 2;

fn skip_when_behind(compositor: &gst::Element, fps: u32) -> Result<(), MediaError> {
    let src = compositor
        .static_pad("src")
        .ok_or_else(|| MediaError::Init("compositor without a src pad".into()))?;
    let frame = gst::ClockTime::from_nseconds(1_000_000_000 / u64::from(fps.max(1)));
    let weak = compositor.downgrade();
    src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let pts = info.buffer().and_then(|b| b.pts());
        let running = weak
            .upgrade()
            .and_then(|e| common::running_time(&e))
            .map(|d| gst::ClockTime::from_nseconds(d.as_nanos() as u64));
        if let (Some(pts), Some(running)) = (pts, running)
            && running > pts + frame * QOS_SLACK_FRAMES
        {
            // Skip what is due up to one frame ago.
            let behind = running - pts - frame;
            let qos =
                gst::event::Qos::new(gst::QOSType::Underflow, 1.0, behind.nseconds() as i64, pts);
            // From the streaming thread, as a synced sink sends it.
            let _ = pad.send_event(qos);
        }
        gst::PadProbeReturn::Ok
    })
    .ok_or_else(|| MediaError::Init("cannot watch the compositor's output".into()))?;
    Ok(())
}

/// One composed picture, BGRx.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub data: Vec<u8>,
}

impl Snapshot {
    /// `(r, g, b)` at `(x, y)`.
    pub fn rgb(&self, x: u32, y: u32) -> Option<(u8, u8, u8)> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = y as usize * self.stride + x as usize * 4;
        let px = self.data.get(i..i + 3)?;
        Some((px[2], px[1], px[0]))
    }
}

impl Inner {
    fn current_layout(&self) -> (Vec<layout::Rect>, Option<layout::Rect>) {
        let (w, h) = self.size.lock().map(|s| *s).unwrap_or((16, 16));
        let Ok(slots) = self.slots.lock() else {
            return (Vec::new(), None);
        };
        let pics: Vec<(u32, u32)> = slots
            .iter()
            .filter(|s| s.role == Role::Participant)
            .map(|s| s.size)
            .collect();
        let preview = slots
            .iter()
            .find(|s| s.role == Role::Preview)
            .map(|s| s.size);
        layout::layout(&pics, preview, w, h)
    }

    /// Places every input as the layout says; the idle card shows when no participant does.
    fn relayout(&self) {
        let (rects, pip) = self.current_layout();
        let Ok(slots) = self.slots.lock() else {
            return;
        };
        let mut shown = 0;
        let mut participants = slots.iter().filter(|s| s.role == Role::Participant);
        for r in &rects {
            if let Some(s) = participants.next() {
                let visible = s.size != (0, 0);
                place(&s.pad, r.x, r.y, r.width, r.height);
                s.pad
                    .set_property("alpha", if visible { 1.0f64 } else { 0.0 });
                shown += usize::from(visible);
            }
        }
        // Participants beyond the grid stay hidden.
        for s in participants {
            s.pad.set_property("alpha", 0.0f64);
        }
        if let (Some(r), Some(s)) = (pip, slots.iter().find(|s| s.role == Role::Preview)) {
            place(&s.pad, r.x, r.y, r.width, r.height);
            s.pad
                .set_property("alpha", if s.size != (0, 0) { 1.0f64 } else { 0.0 });
        }
        self.idle_pad
            .set_property("alpha", if shown == 0 { 1.0f64 } else { 0.0 });
    }

    fn remove(&self, id: u64) {
        let slot = self.slots.lock().ok().and_then(|mut slots| {
            let i = slots.iter().position(|s| s.id == id)?;
            Some(slots.remove(i))
        });
        if let Some(s) = slot {
            let _ = s.src.end_of_stream();
            // The compositor's pad first: releasing it flushes it, which wakes the input's
            // streaming thread if it waits in that pad for the compositor to take a picture.
            // Stopping the appsrc first would wait for that thread, and so for the compositor,
            // forever if the compositor is stuck (the QEMU test's device B hung here).
            self.compositor.release_request_pad(&s.pad);
            let _ = s.src.set_state(gst::State::Null);
            let _ = self.pipeline.remove(&s.src);
        }
        self.relayout();
    }

    fn set_size(&self, id: u64, size: (u32, u32)) {
        let changed = self
            .slots
            .lock()
            .ok()
            .and_then(|mut slots| {
                let s = slots.iter_mut().find(|s| s.id == id)?;
                let changed = s.size != size;
                s.size = size;
                Some(changed)
            })
            .unwrap_or(false);
        if changed {
            self.relayout();
        }
    }

    /// A new output size (the KMS mode): the compositor renegotiates and everything moves.
    fn resize(&self, width: u32, height: u32) {
        if let Ok(mut s) = self.size.lock() {
            if *s == (width, height) {
                return;
            }
            *s = (width, height);
        }
        self.out_caps
            .set_property("caps", raw_caps("BGRx", width, height, Some(self.fps)));
        place(&self.idle_pad, 0, 0, width, height);
        self.idle_text
            .set_property("font-desc", format!("Sans {}", (height / 24).max(8)));
        self.relayout();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut o) = self.output.lock() {
            *o = None;
        }
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// Where a [`PlayPipeline`](super::PlayPipeline) or the publisher's capture sends its decoded
/// pictures; dropping it takes the picture off the screen.
pub struct ScreenInput {
    id: u64,
    src: gst_app::AppSrc,
    inner: Weak<Inner>,
    caps: Mutex<Option<gst::Caps>>,
}

impl ScreenInput {
    /// Shows one raw picture (any size and format `videoconvert` handles; the compositor
    /// scales). The pixels are not copied. Never blocks: a full input drops the picture.
    pub fn push(&self, sample: &gst::Sample) {
        let (Some(buffer), Some(caps)) = (sample.buffer(), sample.caps()) else {
            return;
        };
        if let Ok(mut current) = self.caps.lock()
            && current.as_ref().map(|c| c.as_ref()) != Some(caps)
        {
            let size = gst_video::VideoInfo::from_caps(caps)
                .map(|i| (i.width(), i.height()))
                .unwrap_or((0, 0));
            self.src.set_caps(Some(&caps.to_owned()));
            *current = Some(caps.to_owned());
            if let Some(inner) = self.inner.upgrade() {
                inner.set_size(self.id, size);
            }
        }
        // A new buffer header on the same memory: the screen's appsrc stamps it with the
        // screen pipeline's running time.
        let mut b = buffer.copy();
        if let Some(m) = b.get_mut() {
            m.set_pts(gst::ClockTime::NONE);
            m.set_dts(gst::ClockTime::NONE);
        }
        let _ = self.src.push_buffer(b);
    }
}

impl Drop for ScreenInput {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.remove(self.id);
        }
    }
}

fn raw_caps(format: &str, width: u32, height: u32, fps: Option<u32>) -> gst::Caps {
    let mut b = gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("width", width as i32)
        .field("height", height as i32);
    if let Some(f) = fps {
        b = b.field("framerate", gst::Fraction::new(f as i32, 1));
    }
    b.build()
}

fn capsfilter(name: &str, caps: gst::Caps) -> Result<gst::Element, MediaError> {
    let f = make("capsfilter", name, "caps filter")?;
    f.set_property("caps", caps);
    Ok(f)
}

fn place(pad: &gst::Pad, x: i32, y: i32, w: u32, h: u32) {
    pad.set_property("xpos", x);
    pad.set_property("ypos", y);
    pad.set_property("width", w as i32);
    pad.set_property("height", h as i32);
}

/// What the output pipeline shows on.
enum OutputKind {
    Window,
    Kms(display::KmsOpen),
}

/// The output pipeline: composed pictures in, a real display out.
struct Output {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    failed: Arc<AtomicBool>,
    _bus: BusThread,
}

impl Output {
    fn start(
        kind: &OutputKind,
        width: u32,
        height: u32,
        fps: u32,
        displayed: Arc<AtomicU64>,
    ) -> Result<Output, MediaError> {
        let pipeline = gst::Pipeline::with_name("screen-output");
        let src = gst_app::AppSrc::builder()
            .name("screen-out-src")
            .caps(&raw_caps("BGRx", width, height, Some(fps)))
            .is_live(true)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_buffers(2)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Upstream)
            .build();
        let convert = make(
            "videoconvert",
            "screen-out-convert",
            "display format conversion",
        )?;
        let sink = match kind {
            OutputKind::Window => {
                let s = make("autovideosink", "screen-out", "desktop video window")?;
                set_if_present(&s, "sync", "false");
                s
            }
            OutputKind::Kms(k) => display::kms_sink(k)?,
        };
        pipeline
            .add_many([src.upcast_ref(), &convert, &sink])
            .map_err(|e| MediaError::Init(format!("cannot add display elements: {e}")))?;
        common::link_all(&[src.upcast_ref(), &convert, &sink])?;
        // Counts what reaches the sink: a display that stays dark while this count grows is
        // the sink's (or the driver's) doing, not the compositor's.
        if let Some(pad) = sink.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                displayed.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let failed = Arc::new(AtomicBool::new(false));
        let bus = BusThread::start(&pipeline, failed.clone())?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(MediaError::UnusableElement {
                element: sink
                    .factory()
                    .map(|f| f.name().to_string())
                    .unwrap_or_default(),
                reason: "the display does not open".into(),
            });
        }
        Ok(Output {
            pipeline,
            src,
            failed,
            _bus: bus,
        })
    }

    fn push(&self, sample: &gst::Sample) {
        if let Some(buffer) = sample.buffer() {
            let mut b = buffer.copy();
            if let Some(m) = b.get_mut() {
                m.set_pts(gst::ClockTime::NONE);
                m.set_dts(gst::ClockTime::NONE);
            }
            let _ = self.src.push_buffer(b);
        }
    }

    fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The output's bus: an error marks the output failed (the watcher replaces it); it never
/// stops the compositor.
struct BusThread {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl BusThread {
    fn start(pipeline: &gst::Pipeline, failed: Arc<AtomicBool>) -> Result<BusThread, MediaError> {
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::NotRunning("screen-output".into()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("bus-screen-out".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    let Some(msg) = bus.timed_pop_filtered(
                        gst::ClockTime::from_mseconds(100),
                        &[gst::MessageType::Error],
                    ) else {
                        continue;
                    };
                    if let gst::MessageView::Error(e) = msg.view() {
                        let element = msg
                            .src()
                            .map(|s| s.path_string().to_string())
                            .unwrap_or_default();
                        tracing::warn!(%element, error = %e.error(), debug = ?e.debug(), "screen: the display failed; waiting for it to come back");
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            })
            .map_err(|e| MediaError::Init(format!("cannot start the bus thread: {e}")))?;
        Ok(BusThread {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for BusThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The `kms` watcher: starts the output when the connector is connected, stops it when the
/// connector goes away or the sink fails, and tries again every [`CONNECTOR_POLL`].
fn kms_watch(weak: Weak<Inner>, target: KmsTarget) {
    let mut reported: Option<String> = None;
    let mut failures: u32 = 0;
    loop {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        if inner.stop.load(Ordering::Relaxed) {
            return;
        }
        let found = display::find_connector(target.connector.as_deref());
        let running = inner
            .output
            .lock()
            .map(|o| o.as_ref().map(|o| !o.failed()))
            .unwrap_or(None);
        let state = match &found {
            Some(c) if c.connected() => format!("{} connected", c.name),
            Some(c) => format!("{} {}", c.name, c.status),
            None => "no connector".to_string(),
        };
        if reported.as_deref() != Some(state.as_str()) {
            tracing::info!(connector = %state, "screen: display connector");
            reported = Some(state);
        }
        match (found, running) {
            (Some(c), None) | (Some(c), Some(false)) if c.connected() => {
                if let Ok(mut o) = inner.output.lock() {
                    *o = None;
                }
                let mut open = display::kms_open(&c, target.mode);
                // Every other attempt after a failure lets kmssink find the driver itself, in
                // case the card's device driver is not named as its DRM driver.
                if failures % 2 == 1 {
                    open.driver = None;
                }
                inner.resize(open.width, open.height);
                match Output::start(
                    &OutputKind::Kms(open.clone()),
                    open.width,
                    open.height,
                    inner.fps,
                    inner.displayed.clone(),
                ) {
                    Ok(out) => {
                        tracing::info!(connector = %c.name, width = open.width, height = open.height, "screen: showing on the display");
                        inner.output_starts.fetch_add(1, Ordering::Relaxed);
                        failures = 0;
                        if let Ok(mut o) = inner.output.lock() {
                            *o = Some(out);
                        }
                        if let Ok(mut n) = inner.connector.lock() {
                            *n = Some(c.name.clone());
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        // Said once, then every minute: a display that never opens is not news.
                        if failures == 1 || failures.is_multiple_of(60) {
                            tracing::warn!(connector = %c.name, error = %e, failures, "screen: the display does not open; trying again every second");
                        }
                    }
                }
            }
            (c, Some(_)) if !c.as_ref().is_some_and(|c| c.connected()) => {
                tracing::info!("screen: the display went away; showing again when it is back");
                if let Ok(mut o) = inner.output.lock() {
                    *o = None;
                }
            }
            (_, Some(false)) => {
                failures += 1;
                if let Ok(mut o) = inner.output.lock() {
                    *o = None;
                }
            }
            _ => {}
        }
        drop(inner);
        // Sleep in small steps so dropping the screen is prompt.
        for _ in 0..10 {
            std::thread::sleep(CONNECTOR_POLL / 10);
            if weak
                .upgrade()
                .is_none_or(|i| i.stop.load(Ordering::Relaxed))
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64x36 screen with no output.
    fn small_settings(fps: u32) -> ScreenSettings {
        ScreenSettings {
            sink: DisplaySink::None,
            width: 64,
            height: 36,
            fps,
            ..ScreenSettings::default()
        }
    }

    /// A picture for an input: 64x36 I420, grey.
    fn picture() -> gst::Sample {
        let caps = raw_caps("I420", 64, 36, Some(30));
        let info = gst_video::VideoInfo::from_caps(&caps).unwrap();
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        buffer.get_mut().unwrap().map_writable().unwrap().fill(128);
        gst::Sample::builder().buffer(&buffer).caps(&caps).build()
    }

    #[test]
    fn the_compositor_latency_can_be_configured_with_inputs() {
        common::init().unwrap();
        let screen = Screen::start(&small_settings(5), "idle").unwrap();
        // The idle source answers its latency once it runs (negotiated): wait for a picture.
        let start = std::time::Instant::now();
        while screen.stats().frames_composed < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "nothing composed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _a = screen.add_participant().unwrap();
        let _b = screen.add_preview().unwrap();
        let mut q = gst::query::Latency::new();
        assert!(
            screen.inner.compositor.query(&mut q),
            "the compositor refused its latency (an input's max below the idle source's min)"
        );
        let (live, min, max) = q.result();
        assert!(live);
        assert!(max.is_none_or(|m| m >= min), "{min} > {max:?}");
    }

    /// Under emulation the idle source's first picture came after the compositor's first
    /// deadline; with `ignore-inactive-pads` the compositor then ended the stream (EOS) and the
    /// screen composed nothing for the rest of the run. The first idle picture is held back
    /// here for a second: the screen must still compose.
    #[test]
    fn a_late_first_idle_picture_does_not_end_the_screen() {
        common::init().unwrap();
        let held = Arc::new(AtomicBool::new(false));
        let h = held.clone();
        let screen = Screen::start_with_idle_probe(&small_settings(30), "idle", move || {
            if !h.swap(true, Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1000));
            }
        })
        .unwrap();
        let start = std::time::Instant::now();
        while screen.stats().frames_composed < 10 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the screen composed {} pictures",
                screen.stats().frames_composed
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(held.load(Ordering::SeqCst));
    }

    /// Composing takes three frame periods here (a probe sleeps 100 ms a picture at 30 fps):
    /// the compositor skips pictures and its output stays near the present, where it would
    /// otherwise fall behind by two thirds of every second (over 2.5 s after 4 s).
    #[test]
    fn a_compositor_that_cannot_keep_up_skips_pictures_instead_of_falling_behind() {
        common::init().unwrap();
        let screen = Screen::start(&small_settings(30), "idle").unwrap();
        let compositor = screen.inner.compositor.clone();
        let lag = Arc::new(Mutex::new(None::<gst::ClockTime>));
        let l = lag.clone();
        let weak = compositor.downgrade();
        compositor
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                std::thread::sleep(Duration::from_millis(100));
                if let (Some(pts), Some(e)) = (info.buffer().and_then(|b| b.pts()), weak.upgrade())
                    && let (Some(clock), Some(base)) = (e.clock(), e.base_time())
                {
                    *l.lock().unwrap() =
                        Some(clock.time().saturating_sub(base).saturating_sub(pts));
                }
                gst::PadProbeReturn::Ok
            })
            .unwrap();
        std::thread::sleep(Duration::from_secs(4));
        let lag = lag
            .lock()
            .unwrap()
            .expect("the compositor composed nothing");
        assert!(
            lag < gst::ClockTime::from_mseconds(1500),
            "the screen is {lag} behind the clock"
        );
        drop(screen);
    }

    #[test]
    fn an_input_leaves_while_the_compositor_is_stuck() {
        common::init().unwrap();
        let screen = Screen::start(&small_settings(30), "idle").unwrap();
        let input = screen.add_participant().unwrap();
        // The compositor's output blocks: it takes no more pictures from its inputs.
        let out = screen.inner.compositor.static_pad("src").unwrap();
        out.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BLOCK,
            |_, _| gst::PadProbeReturn::Ok,
        )
        .unwrap();
        // Enough pictures that the input's thread waits in the compositor's pad.
        for _ in 0..50 {
            input.push(&picture());
            std::thread::sleep(Duration::from_millis(10));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(input);
            let _ = tx.send(());
        });
        // A hang guard, not a speed check.
        assert!(
            rx.recv_timeout(Duration::from_secs(20)).is_ok(),
            "removing the input waited for the stuck compositor"
        );
    }
}

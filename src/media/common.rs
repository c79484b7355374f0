//! GStreamer plumbing shared by the publish and play pipelines: element creation with typed
//! errors, probing, state changes with a timeout, and the bus thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::MediaError;

/// How long a state change may take before it is reported as an error.
pub(crate) const STATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Initialises GStreamer (idempotent; call before building pipelines).
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// The variable that makes GStreamer's V4L2 elements drain their buffer pool on stop instead of
/// "orphaning" it.
pub const V4L2_FORCE_DRAIN: &str = "GST_V4L2_FORCE_DRAIN";

/// Sets the environment GStreamer must see in this process (GStreamer only asks whether the
/// variable is set, so one already there is left alone).
///
/// `GST_V4L2_FORCE_DRAIN=1`: GStreamer 1.22's V4L2 elements (`v4l2src`, `v4l2h264enc`, ...)
/// orphan their buffer pool when they stop, and that path drops one reference too few. The pool
/// and its element keep each other alive, and so does the pool's copy of the device file
/// descriptor, for the life of the process. Each `v4l2src` the camera watcher throws away then
/// keeps the camera node open: a camera that went away cannot be unloaded, and when it comes back
/// it gets another node (`/dev/video1`), so it is never found again. With the variable set, the
/// pool is deactivated and released instead (GStreamer's own path for drivers that cannot orphan
/// buffers), and the element and the descriptor are freed when the element is. The QEMU system
/// test checks it: vivid unbound mid-call must unload (`docs/qemu.md`).
///
/// # Safety
///
/// Changes the process environment: call it before any other thread runs (at the top of `main`),
/// because GStreamer's threads read the environment without a lock.
pub unsafe fn prepare_process_env() {
    if std::env::var_os(V4L2_FORCE_DRAIN).is_none() {
        // SAFETY: the caller guarantees no other thread runs yet.
        unsafe { std::env::set_var(V4L2_FORCE_DRAIN, "1") };
    }
}

/// Creates `factory` named `name`, or says which element is missing and what it was for.
pub(crate) fn make(
    factory: &str,
    name: &str,
    purpose: &'static str,
) -> Result<gst::Element, MediaError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: factory.to_owned(),
            purpose,
        })
}

/// Whether `factory` exists here.
pub(crate) fn exists(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// Creates `element`, brings it to READY (which opens its device) and back: `Ok` when it works.
pub(crate) fn probe(element: &gst::Element) -> Result<(), MediaError> {
    let result = element.set_state(gst::State::Ready);
    let _ = element.set_state(gst::State::Null);
    result.map(|_| ()).map_err(|_| MediaError::UnusableElement {
        element: element
            .factory()
            .map(|f| f.name().to_string())
            .unwrap_or_default(),
        reason: "it does not open (no device, or the device refuses)".into(),
    })
}

/// Sets `prop` when the element has it (properties differ between plugin versions).
pub(crate) fn set_if_present(element: &gst::Element, prop: &str, value: &str) {
    if element.find_property(prop).is_some() {
        element.set_property_from_str(prop, value);
    }
}

pub(crate) fn link_all(elements: &[&gst::Element]) -> Result<(), MediaError> {
    for pair in elements.windows(2) {
        pair[0].link(pair[1]).map_err(|_| MediaError::Link {
            from: pair[0].name().to_string(),
            to: pair[1].name().to_string(),
        })?;
    }
    Ok(())
}

/// Sets `state` and waits for it (live pipelines answer `NoPreroll`, which is fine).
pub(crate) fn change_state(pipeline: &gst::Pipeline, state: gst::State) -> Result<(), MediaError> {
    let err = || MediaError::StateChange {
        pipeline: pipeline.name().to_string(),
        state: match state {
            gst::State::Playing => "PLAYING",
            gst::State::Paused => "PAUSED",
            gst::State::Ready => "READY",
            _ => "NULL",
        },
        timeout_ms: STATE_TIMEOUT.as_millis() as u64,
    };
    pipeline.set_state(state).map_err(|_| err())?;
    let (result, current, _) = pipeline.state(gst::ClockTime::from_nseconds(
        STATE_TIMEOUT.as_nanos() as u64,
    ));
    match result {
        Ok(_) if current == state => Ok(()),
        _ => Err(err()),
    }
}

/// The pipeline's running time now, when it has a clock.
pub(crate) fn running_time(element: &gst::Element) -> Option<Duration> {
    let clock = element.clock()?;
    let base = element.base_time()?;
    clock
        .time()
        .checked_sub(base)
        .map(|t| Duration::from_nanos(t.nseconds()))
}

/// Wall-clock time in Unix ms.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Wall-clock time in Unix ns.
pub(crate) fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Watches a pipeline's bus on a small thread: the first error is kept (naming the element) and
/// stops the pipeline; warnings are logged.
pub(crate) struct BusWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub(crate) error: Arc<Mutex<Option<MediaError>>>,
}

impl BusWatch {
    pub(crate) fn start(pipeline: &gst::Pipeline) -> Result<Self, MediaError> {
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::NotRunning(pipeline.name().to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let weak = pipeline.downgrade();
        let name = pipeline.name().to_string();
        let (stop2, error2) = (stop.clone(), error.clone());
        let thread = std::thread::Builder::new()
            .name(format!("bus-{name}"))
            .spawn(move || {
                let mut throttle = super::warn_throttle::WarnThrottle::default();
                while !stop2.load(Ordering::Relaxed) {
                    let Some(msg) = bus.timed_pop_filtered(
                        gst::ClockTime::from_mseconds(100),
                        &[gst::MessageType::Error, gst::MessageType::Warning],
                    ) else {
                        continue;
                    };
                    let element = msg.src().map(|s| s.path_string().to_string()).unwrap_or_default();
                    match msg.view() {
                        gst::MessageView::Error(e) => {
                            tracing::error!(pipeline = %name, %element, error = %e.error(), debug = ?e.debug(), "pipeline error");
                            if let Ok(mut slot) = error2.lock() {
                                slot.get_or_insert(MediaError::Pipeline {
                                    pipeline: name.clone(),
                                    element,
                                    message: e.error().to_string(),
                                    debug: e.debug().map(|d| d.to_string()),
                                });
                            }
                            if let Some(p) = weak.upgrade() {
                                let _ = p.set_state(gst::State::Null);
                            }
                        }
                        gst::MessageView::Warning(w) => {
                            let detail = w.debug().map(|d| d.to_string()).unwrap_or_default();
                            let key = format!("{element}: {} {detail}", w.error());
                            if let Some(held) = throttle.admit(&key, std::time::Instant::now()) {
                                tracing::warn!(pipeline = %name, %element, warning = %w.error(), %detail, repeats_held_back = held, "pipeline warning");
                            }
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| MediaError::Init(format!("cannot start the bus thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
            error,
        })
    }

    pub(crate) fn error(&self) -> Option<MediaError> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// The first error, waiting up to `timeout` for the bus thread to see it.
    pub(crate) fn wait_error(&self, timeout: Duration) -> Option<MediaError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(e) = self.error() {
                return Some(e);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for BusWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

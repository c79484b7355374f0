//! Hot-plug for audio devices: a small thread that keeps one device pipeline (a microphone's
//! capture, a speaker's output) open, and when the device errors, ends its stream or stops
//! delivering, tears it down and tries again every [`RETRY`] until it opens. Whatever the device
//! pipeline feeds (the publisher's mixer, the speaker's mixer) keeps running meanwhile: the call
//! stays up and hears silence, and resumes by itself when the device is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::MediaError;

/// Time between two attempts to open a missing device.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// Builds the device pipeline (not started); an `Err` means the device is not there now.
pub(crate) type Opener = Box<dyn FnMut() -> Result<gst::Pipeline, MediaError> + Send>;

/// What the loop reports: whether the device is in use, and how often it came and went.
#[derive(Debug, Default)]
pub(crate) struct DeviceStatus {
    on_device: AtomicBool,
    opened: AtomicU64,
    lost: AtomicU64,
    /// Samples seen, bumped by the device pipeline's callbacks (the stall check reads it).
    activity: AtomicU64,
}

impl DeviceStatus {
    /// The device pipeline runs.
    pub(crate) fn on_device(&self) -> bool {
        self.on_device.load(Ordering::Relaxed)
    }
    /// Times the device was opened (1 after a clean start; +1 per recovery).
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
    /// Times the device was lost (error, end of stream, or no data).
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }
    /// Called for each buffer the device delivers.
    pub(crate) fn touch(&self) {
        self.activity.fetch_add(1, Ordering::Relaxed);
    }
}

/// The thread; dropping it stops the device pipeline.
pub(crate) struct DeviceLoop {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DeviceLoop {
    /// Starts the loop for the device called `what` (for messages). With `stall`, a device that
    /// delivers nothing for that long (after its start) counts as lost.
    pub(crate) fn spawn(
        what: String,
        stall: Option<Duration>,
        mut open: Opener,
        status: Arc<DeviceStatus>,
    ) -> Result<Self, MediaError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let err = format!("cannot start the {what} thread");
        let thread = std::thread::Builder::new()
            .name("audio-device".into())
            .spawn(move || run(&what, stall, &mut open, &status, &stop2))
            .map_err(|e| MediaError::Init(format!("{err}: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for DeviceLoop {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Running {
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    started: Instant,
    seen: u64,
    last_activity: Instant,
}

fn start(open: &mut Opener) -> Result<Running, MediaError> {
    let pipeline = open()?;
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::NotRunning(pipeline.name().to_string()))?;
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The element's own message says why (no such device, busy).
        let why = bus
            .pop_filtered(&[gst::MessageType::Error])
            .and_then(|m| match m.view() {
                gst::MessageView::Error(e) => Some(e.error().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "it does not start".into());
        let _ = pipeline.set_state(gst::State::Null);
        return Err(MediaError::UnusableElement {
            element: pipeline.name().to_string(),
            reason: why,
        });
    }
    let now = Instant::now();
    Ok(Running {
        pipeline,
        bus,
        started: now,
        seen: 0,
        last_activity: now,
    })
}

fn run(
    what: &str,
    stall: Option<Duration>,
    open: &mut Opener,
    status: &DeviceStatus,
    stop: &AtomicBool,
) {
    let mut current: Option<Running> = None;
    let mut next_try = Instant::now();
    // Log a failing open once per outage, not every second.
    let mut reported = false;
    while !stop.load(Ordering::Relaxed) {
        let Some(r) = current.as_mut() else {
            if Instant::now() < next_try {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            match start(open) {
                Ok(r) => {
                    let n = status.opened.fetch_add(1, Ordering::Relaxed);
                    if n > 0 {
                        tracing::info!(device = what, "audio device back; using it again");
                    }
                    status.on_device.store(true, Ordering::Relaxed);
                    reported = false;
                    current = Some(r);
                }
                Err(e) => {
                    if !reported {
                        tracing::warn!(device = what, error = %e, "audio device missing; silence until it opens (retrying every second)");
                        reported = true;
                    }
                    next_try = Instant::now() + RETRY;
                }
            }
            continue;
        };
        let msg = r.bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(100),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        );
        let now = Instant::now();
        let seen = status.activity.load(Ordering::Relaxed);
        if seen != r.seen {
            r.seen = seen;
            r.last_activity = now;
        }
        let why = match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(e)) => Some(e.error().to_string()),
            Some(gst::MessageView::Eos(_)) => Some("end of stream".to_string()),
            _ => stall
                .filter(|s| now.duration_since(r.last_activity) > *s)
                .map(|s| format!("no audio for {} ms", s.as_millis())),
        };
        if let Some(why) = why {
            tracing::warn!(device = what, reason = %why, after_ms = now.duration_since(r.started).as_millis() as u64, "audio device lost; silence until it is back");
            let _ = r.pipeline.set_state(gst::State::Null);
            current = None;
            status.on_device.store(false, Ordering::Relaxed);
            status.lost.fetch_add(1, Ordering::Relaxed);
            reported = true;
            next_try = now + RETRY;
        }
    }
    if let Some(r) = current {
        let _ = r.pipeline.set_state(gst::State::Null);
    }
    status.on_device.store(false, Ordering::Relaxed);
}

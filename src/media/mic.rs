//! The microphone side of hot-plug: capture runs in its own small pipeline ending at an appsink,
//! kept open by a [`DeviceLoop`], and every buffer goes into the publisher's microphone mixer
//! input. When the microphone goes away the mixer's silence takes over; when it is back
//! (reopened every second) its audio is mixed in again. The encoder never notices.
//!
//! ```text
//! alsasrc device=<pcm> -> audioconvert -> audioresample -> S16LE 48 kHz mono -> appsink
//!     -> (push) -> publisher: appsrc -> audiomixer (+ silence) -> [webrtcdsp] -> opusenc
//! ```
//!
//! [`AudioFeed`] is the same thing without hardware: an `appsrc` a program (a test) pushes PCM
//! into, which it can unplug (the capture pipeline then fails like a vanished USB card) and plug
//! back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::common::{self, make};
use super::mix::{self, MixerInput};
use super::reopen::{DeviceLoop, DeviceStatus};

/// A capture that delivers nothing for this long is treated as gone (a wedged USB device).
const STALL: Duration = Duration::from_secs(2);

/// Where the microphone's audio comes from.
#[derive(Debug, Clone)]
pub(crate) enum MicSource {
    Alsa(String),
    Feed(AudioFeed),
}

impl MicSource {
    pub(crate) fn label(&self) -> String {
        match self {
            MicSource::Alsa(pcm) => format!("microphone {pcm}"),
            MicSource::Feed(_) => "microphone feed".into(),
        }
    }
}

/// A microphone without hardware: PCM pushed by the program, S16LE 48 kHz mono. Clones share
/// one feed. [`unplug`](Self::unplug) makes the capture fail as a removed sound card does, and
/// opening fails until [`plug`](Self::plug).
#[derive(Clone, Default)]
pub struct AudioFeed {
    inner: Arc<Mutex<FeedState>>,
}

#[derive(Default)]
struct FeedState {
    unplugged: bool,
    src: Option<gst_app::AppSrc>,
}

impl std::fmt::Debug for AudioFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioFeed")
    }
}

impl PartialEq for AudioFeed {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for AudioFeed {}

impl AudioFeed {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pushes samples into the capture, when it is open; `false` when not (nothing captured).
    pub fn push(&self, samples: &[i16]) -> bool {
        let Ok(st) = self.inner.lock() else {
            return false;
        };
        let Some(src) = st.src.as_ref().filter(|_| !st.unplugged) else {
            return false;
        };
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        src.push_buffer(gst::Buffer::from_mut_slice(bytes)).is_ok()
    }

    /// The device vanishes: the open capture fails with a "device gone" error.
    pub fn unplug(&self) {
        if let Ok(mut st) = self.inner.lock() {
            st.unplugged = true;
            if let Some(src) = st.src.take() {
                gst::element_error!(
                    src,
                    gst::ResourceError::NotFound,
                    ["the microphone feed was unplugged"]
                );
            }
        }
    }

    /// The device is back: the next attempt to open it succeeds.
    pub fn plug(&self) {
        if let Ok(mut st) = self.inner.lock() {
            st.unplugged = false;
        }
    }

    /// Whether a capture has the feed open now.
    pub fn is_open(&self) -> bool {
        self.inner
            .lock()
            .map(|s| s.src.is_some() && !s.unplugged)
            .unwrap_or(false)
    }
}

/// The running capture; dropping it closes the device.
pub(crate) struct MicCapture {
    status: Arc<DeviceStatus>,
    _loop: DeviceLoop,
}

impl MicCapture {
    /// Starts capturing from `source` into `input`; a missing device is retried, not an error.
    pub(crate) fn start(source: MicSource, input: Arc<MixerInput>) -> Result<Self, MediaError> {
        let status = Arc::new(DeviceStatus::default());
        let st = status.clone();
        let label = source.label();
        let opener = Box::new(move || open_capture(&source, &input, &st));
        let lp = DeviceLoop::spawn(label, Some(STALL), opener, status.clone())?;
        Ok(Self { status, _loop: lp })
    }

    /// The microphone is open and delivering.
    pub(crate) fn on_device(&self) -> bool {
        self.status.on_device()
    }

    pub(crate) fn status(&self) -> &DeviceStatus {
        &self.status
    }
}

fn open_capture(
    source: &MicSource,
    input: &Arc<MixerInput>,
    status: &Arc<DeviceStatus>,
) -> Result<gst::Pipeline, MediaError> {
    let pipeline = gst::Pipeline::with_name("mic-capture");
    let sink = gst_app::AppSink::builder()
        .name("micsink")
        .sync(false)
        .max_buffers(8)
        .drop(true)
        .caps(&mix::s16_mono_caps())
        .build();
    match source {
        MicSource::Alsa(pcm) => {
            let src = make("alsasrc", "micsrc", "ALSA capture")?;
            src.set_property("device", pcm.as_str());
            // 10 ms periods: small pushes keep the mixer's latency small.
            src.set_property("latency-time", 10_000i64);
            src.set_property("buffer-time", 100_000i64);
            let convert = make("audioconvert", "micconvert", "audio format conversion")?;
            let resample = make("audioresample", "micresample", "audio resampling")?;
            pipeline
                .add_many([&src, &convert, &resample, sink.upcast_ref()])
                .map_err(|e| MediaError::Init(format!("cannot add capture elements: {e}")))?;
            common::link_all(&[&src, &convert, &resample, sink.upcast_ref()])?;
        }
        MicSource::Feed(feed) => {
            let mut st = feed
                .inner
                .lock()
                .map_err(|_| MediaError::NotRunning("microphone feed (poisoned)".into()))?;
            if st.unplugged {
                return Err(MediaError::UnusableElement {
                    element: "microphone feed".into(),
                    reason: "unplugged".into(),
                });
            }
            let src = gst_app::AppSrc::builder()
                .name("micsrc")
                .caps(&mix::s16_mono_caps())
                .is_live(true)
                .format(gst::Format::Time)
                .do_timestamp(true)
                .max_bytes(96_000)
                .block(false)
                .leaky_type(gst_app::AppLeakyType::Downstream)
                .build();
            pipeline
                .add_many([src.upcast_ref::<gst::Element>(), sink.upcast_ref()])
                .map_err(|e| MediaError::Init(format!("cannot add capture elements: {e}")))?;
            common::link_all(&[src.upcast_ref::<gst::Element>(), sink.upcast_ref()])?;
            st.src = Some(src);
        }
    }
    let (input, status) = (input.clone(), status.clone());
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
                status.touch();
                input.push(buffer);
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    Ok(pipeline)
}

//! [`AudioTap`]: a speaker output without hardware. The speaker's output pipeline ends in an
//! appsink whose audio the program (a test) reads; it can be unplugged (the output then fails
//! as a removed USB speaker's does, and opening it fails) and plugged back. The speaker's
//! hot-plug handling is the same as for an ALSA device.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::mix;
use super::tone;

/// Audio kept for [`AudioTap::recent_samples`] (0.5 s).
const RECENT: usize = 24_000;

/// A speaker output the program reads; clones share one tap.
#[derive(Clone, Default)]
pub struct AudioTap {
    inner: Arc<Mutex<TapState>>,
}

#[derive(Default)]
struct TapState {
    unplugged: bool,
    sink: Option<gst_app::AppSink>,
    buffers: u64,
    recent: VecDeque<f32>,
}

impl std::fmt::Debug for AudioTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudioTap")
    }
}

impl AudioTap {
    pub fn new() -> Self {
        Self::default()
    }

    /// The device vanishes: the open output fails with a "device gone" error.
    pub fn unplug(&self) {
        if let Ok(mut st) = self.inner.lock() {
            st.unplugged = true;
            st.recent.clear();
            if let Some(sink) = st.sink.take() {
                gst::element_error!(
                    sink,
                    gst::ResourceError::NotFound,
                    ["the speaker tap was unplugged"]
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

    /// Buffers played into the tap so far.
    pub fn buffers(&self) -> u64 {
        self.inner.lock().map(|s| s.buffers).unwrap_or(0)
    }

    /// What the tap played over the last half second (since the last plug-in).
    pub fn recent_samples(&self) -> Vec<f32> {
        self.inner
            .lock()
            .map(|s| s.recent.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The tap's sink for a new output pipeline, or `Err` while unplugged.
    pub(crate) fn open(&self) -> Result<gst::Element, MediaError> {
        let mut st = self
            .inner
            .lock()
            .map_err(|_| MediaError::NotRunning("speaker tap (poisoned)".into()))?;
        if st.unplugged {
            return Err(MediaError::UnusableElement {
                element: "speaker tap".into(),
                reason: "unplugged".into(),
            });
        }
        let sink = gst_app::AppSink::builder()
            .name("spkout")
            .caps(&mix::s16_mono_caps())
            // As the device sinks (speaker::output_sink): the mix arrives paced already.
            .sync(false)
            .max_buffers(8)
            .drop(true)
            .build();
        sink.set_property("async", false);
        let inner = self.inner.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let mut st = inner.lock().map_err(|_| gst::FlowError::Error)?;
                    st.buffers += 1;
                    for s in tone::first_channel_s16(map.as_slice(), 1) {
                        if st.recent.len() >= RECENT {
                            st.recent.pop_front();
                        }
                        st.recent.push_back(s);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        st.sink = Some(sink.clone());
        Ok(sink.upcast())
    }
}

//! A live `audiomixer` that never stops: a silence source keeps it producing, and `appsrc`
//! inputs come and go while it runs. The speaker mixes the remote streams with it; the
//! publisher puts the microphone through one, so a vanished microphone becomes silence instead of
//! a stalled encoder.
//!
//! ```text
//! audiotestsrc wave=silence is-live (10 ms) -> S16LE 48 kHz mono -\
//! appsrc (do-timestamp, live, leaky) -----------------------------> audiomixer -> ...
//! ```
//!
//! Inputs are stamped with the pipeline's running time when they arrive (`do-timestamp`): what
//! feeds them (a decoder's synced appsink, a capture pipeline) already delivers in real time. The
//! mixer's `latency` absorbs the scheduling jitter of those pushes; its alignment threshold
//! (40 ms) turns small timestamp jitter into continuous samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::common::make;

/// The one format of mixed audio: the echo probe, the DSP and Opus all run at 48 kHz mono.
pub(crate) const RATE: i32 = 48_000;
/// How long the mixer waits for a late input before mixing without it.
pub(crate) const MIXER_LATENCY: Duration = Duration::from_millis(20);
/// At most this much audio waits in one input (older audio is dropped).
const INPUT_MAX_BYTES: u64 = (RATE as u64) * 2 / 5; // 200 ms of S16 mono

/// `audio/x-raw,format=S16LE,layout=interleaved,rate=48000,channels=1`.
pub(crate) fn s16_mono_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", RATE)
        .field("channels", 1i32)
        .build()
}

/// Adds silence -> caps -> `audiomixer` to `pipeline` (names prefixed with `prefix`) and
/// returns the mixer; link its src pad onward.
pub(crate) fn silent_mixer(
    pipeline: &gst::Pipeline,
    prefix: &str,
) -> Result<gst::Element, MediaError> {
    let silence = make(
        "audiotestsrc",
        &format!("{prefix}silence"),
        "silence source",
    )?;
    silence.set_property("is-live", true);
    silence.set_property_from_str("wave", "silence");
    silence.set_property("samplesperbuffer", RATE / 100);
    let caps = make("capsfilter", &format!("{prefix}silencecaps"), "caps filter")?;
    caps.set_property("caps", s16_mono_caps());
    // force-live (construct-only): mix on the clock even while an input has not delivered
    // yet; without it an appsrc that never got a buffer holds the whole mix back.
    let mixer = gst::ElementFactory::make("audiomixer")
        .name(format!("{prefix}mixer"))
        .property("force-live", true)
        .build()
        .map_err(|_| MediaError::MissingElement {
            element: "audiomixer".into(),
            purpose: "audio mixer",
        })?;
    mixer.set_property("latency", MIXER_LATENCY.as_nanos() as u64);
    mixer.set_property("output-buffer-duration", 10_000_000u64);
    pipeline
        .add_many([&silence, &caps, &mixer])
        .map_err(|e| MediaError::Init(format!("cannot add the {prefix}mixer: {e}")))?;
    super::common::link_all(&[&silence, &caps, &mixer])?;
    Ok(mixer)
}

/// One `appsrc` input of a [`silent_mixer`]; [`remove`](Self::remove) (or drop) takes it out
/// while the mixer keeps running.
pub(crate) struct MixerInput {
    pipeline: gst::Pipeline,
    mixer: gst::Element,
    src: gst_app::AppSrc,
    pad: Option<gst::Pad>,
    pushed: AtomicU64,
}

impl MixerInput {
    /// Adds an input named `name` and brings it to the pipeline's state.
    pub(crate) fn add(
        pipeline: &gst::Pipeline,
        mixer: &gst::Element,
        name: &str,
    ) -> Result<Self, MediaError> {
        let src = gst_app::AppSrc::builder()
            .name(name)
            .caps(&s16_mono_caps())
            .is_live(true)
            // appsrc's default latency is min 0, max 0: against the silence source's 10 ms
            // the mixer's latency is impossible ("max 0 < min 10 ms", a warning per query) and
            // its inputs' timing undefined. It adds none and its queue bounds nothing here.
            .min_latency(0)
            .max_latency(-1)
            .format(gst::Format::Time)
            .do_timestamp(true)
            .max_bytes(INPUT_MAX_BYTES)
            .block(false)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        pipeline
            .add(&src)
            .map_err(|e| MediaError::Init(format!("cannot add mixer input {name}: {e}")))?;
        let pad = mixer
            .request_pad_simple("sink_%u")
            .ok_or_else(|| MediaError::Init(format!("the mixer gave no input pad for {name}")))?;
        let linked = src
            .static_pad("src")
            .map(|s| s.link(&pad).is_ok())
            .unwrap_or(false);
        if !linked {
            mixer.release_request_pad(&pad);
            let _ = pipeline.remove(&src);
            return Err(MediaError::Link {
                from: name.to_owned(),
                to: mixer.name().to_string(),
            });
        }
        let _ = src.sync_state_with_parent();
        Ok(Self {
            pipeline: pipeline.clone(),
            mixer: mixer.clone(),
            src,
            pad: Some(pad),
            pushed: AtomicU64::new(0),
        })
    }

    /// Queues S16LE 48 kHz mono PCM; `false` when the input is not running (then dropped).
    pub(crate) fn push_pcm(&self, pcm: &[u8]) -> bool {
        self.push(gst::Buffer::from_mut_slice(pcm.to_vec()))
    }

    /// Queues a buffer of S16LE 48 kHz mono (its timestamps are replaced).
    pub(crate) fn push(&self, mut buffer: gst::Buffer) -> bool {
        // Shares the memory; copies only the buffer header when someone else holds it.
        let b = buffer.make_mut();
        b.set_pts(gst::ClockTime::NONE);
        b.set_dts(gst::ClockTime::NONE);
        let ok = self.src.push_buffer(buffer).is_ok();
        if ok {
            self.pushed.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Buffers accepted so far.
    pub(crate) fn pushed(&self) -> u64 {
        self.pushed.load(Ordering::Relaxed)
    }

    /// Takes the input out of the running mixer (idempotent).
    pub(crate) fn remove(&mut self) {
        let Some(pad) = self.pad.take() else {
            return;
        };
        let _ = self.src.set_state(gst::State::Null);
        if let Some(src_pad) = self.src.static_pad("src") {
            let _ = src_pad.unlink(&pad);
        }
        self.mixer.release_request_pad(&pad);
        let _ = self.pipeline.remove(&self.src);
    }
}

impl Drop for MixerInput {
    fn drop(&mut self) {
        self.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixer_latency_can_be_configured_with_inputs() {
        super::super::common::init().unwrap();
        let pipeline = gst::Pipeline::with_name("mixlatency");
        let mixer = silent_mixer(&pipeline, "t").unwrap();
        let sink = super::super::common::make("fakesink", "tsink", "sink").unwrap();
        pipeline.add(&sink).unwrap();
        mixer.link(&sink).unwrap();
        let mixed = std::sync::Arc::new(AtomicU64::new(0));
        let m = mixed.clone();
        mixer
            .static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                m.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        pipeline.set_state(gst::State::Playing).unwrap();
        // The silence source answers its latency once it runs (negotiated): wait for a mix.
        let start = std::time::Instant::now();
        while mixed.load(Ordering::Relaxed) < 3 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the mixer never ran"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _a = MixerInput::add(&pipeline, &mixer, "tin0").unwrap();
        let _b = MixerInput::add(&pipeline, &mixer, "tin1").unwrap();
        let mut q = gst::query::Latency::new();
        let ok = mixer.query(&mut q);
        let _ = pipeline.set_state(gst::State::Null);
        assert!(
            ok,
            "the mixer refused its latency (an input's max below the silence's min)"
        );
        let (live, min, max) = q.result();
        assert!(live);
        assert!(max.is_none_or(|m| m >= min), "{min} > {max:?}");
    }
}

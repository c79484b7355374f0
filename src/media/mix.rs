//! A live `audiomixer` that never stops: a silence source keeps it producing, and `appsrc`
//! inputs come and go while it runs. The speaker mixes the remote streams with it; the
//! publisher puts the microphone through one, so a vanished microphone becomes silence instead of
//! a stalled encoder.
//!
//! ```text
//! audiotestsrc wave=silence is-live (10 ms) -> S16LE 48 kHz mono -\
//! appsrc (placed end to end, live, leaky) ------------------------> audiomixer -> ...
//! ```
//!
//! Inputs are placed on the pipeline's running time as they arrive, end to end
//! ([`InputTimeline`]): what feeds them (a decoder's synced appsink, a capture pipeline) already
//! delivers in real time, but in bursts when its thread is held up, and arrival stamps would
//! turn each hold-up into lost audio. The mixer's `latency` absorbs the scheduling jitter of
//! the pushes; its alignment threshold (40 ms) turns small timestamp jitter into continuous
//! samples.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::common::make;
use super::mix_timeline::{InputTimeline, MAX_AHEAD, Slot};

/// The one format of mixed audio: the echo probe, the DSP and Opus all run at 48 kHz mono.
pub(crate) const RATE: i32 = 48_000;
/// How long the mixer waits for a late input before mixing without it.
pub(crate) const MIXER_LATENCY: Duration = Duration::from_millis(20);
/// At most this much audio waits in one input's queue (older is dropped): a safety net above
/// the timeline's own bound (`MAX_AHEAD`), twice that.
const INPUT_MAX_BYTES: u64 = (RATE as u64) * 2 * (MAX_AHEAD.as_millis() as u64 * 2) / 1000;

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
    timeline: Mutex<InputTimeline>,
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
            timeline: Mutex::new(InputTimeline::default()),
        })
    }

    /// Queues S16LE 48 kHz mono PCM; `false` when the input is not running (then dropped).
    pub(crate) fn push_pcm(&self, pcm: &[u8]) -> bool {
        self.push(gst::Buffer::from_mut_slice(pcm.to_vec()))
    }

    /// Queues a buffer of S16LE 48 kHz mono (its timestamps are replaced: placed on the
    /// running time by the input's [`InputTimeline`]). `false` when the input is not running;
    /// a buffer the timeline drops counts as taken.
    pub(crate) fn push(&self, mut buffer: gst::Buffer) -> bool {
        let Some(now) = self.pipeline.current_running_time() else {
            return false;
        };
        let duration = Duration::from_nanos(buffer.size() as u64 / 2 * 1_000_000_000 / RATE as u64);
        let slot = match self.timeline.lock() {
            Ok(mut t) => t.place(Duration::from_nanos(now.nseconds()), duration),
            Err(_) => return false,
        };
        let Slot::At(at) = slot else {
            return true;
        };
        // Shares the memory; copies only the buffer header when someone else holds it.
        let b = buffer.make_mut();
        b.set_pts(gst::ClockTime::from_nseconds(at.as_nanos() as u64));
        b.set_dts(gst::ClockTime::NONE);
        b.set_duration(gst::ClockTime::from_nseconds(duration.as_nanos() as u64));
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

    /// A feeder held up now and then delivers its audio in bursts; all of it is mixed, none of
    /// it dropped by the timeline (the hold-ups here are 200 ms, the timeline's bound).
    #[test]
    fn audio_that_arrives_in_bursts_is_mixed_whole() {
        super::super::common::init().unwrap();
        let pipeline = gst::Pipeline::with_name("mixbursts");
        let mixer = silent_mixer(&pipeline, "b").unwrap();
        let sink = gstreamer_app::AppSink::builder()
            .name("bsink")
            .sync(true)
            .build();
        sink.set_property("async", false);
        pipeline.add(&sink).unwrap();
        mixer.link(&sink).unwrap();
        let blocks = std::sync::Arc::new(std::sync::Mutex::new(Vec::<f32>::new()));
        let b = blocks.clone();
        sink.set_callbacks(
            gstreamer_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    let x: Vec<f32> =
                        super::super::tone::first_channel_s16(map.as_slice(), 1).collect();
                    let rms = (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt();
                    b.lock().unwrap().push(rms);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pipeline.set_state(gst::State::Playing).unwrap();
        let input = MixerInput::add(&pipeline, &mixer, "bin0").unwrap();
        // 3 s of a 440 Hz tone in 20 ms buffers, delivered ten at a time every 200 ms.
        let frame = 960usize;
        let mut n = 0usize;
        for _ in 0..15 {
            for _ in 0..10 {
                let pcm: Vec<u8> = (0..frame)
                    .flat_map(|i| {
                        let t = (n * frame + i) as f64 / f64::from(RATE);
                        let v =
                            (0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 32767.0) as i16;
                        v.to_le_bytes()
                    })
                    .collect();
                assert!(input.push_pcm(&pcm));
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(500));
        let _ = pipeline.set_state(gst::State::Null);
        let rms = blocks.lock().unwrap().clone();
        // From the first sounding 10 ms block: 3 s of tone, then silence again.
        let first = rms
            .iter()
            .position(|&r| r > 0.05)
            .expect("no tone reached the mix");
        let sounding = rms[first..].iter().filter(|&&r| r > 0.05).count();
        assert!(
            sounding >= 285,
            "{sounding} of 300 blocks of tone reached the mix"
        );
    }
}

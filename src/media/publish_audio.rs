//! The publisher's audio branch up to the Opus encoder: the microphone (or test tone), voice
//! processing (`webrtcdsp`: echo cancellation against the [`crate::media::Speaker`]'s probe,
//! noise suppression, gain control), and the encoder. `publish.rs` adds the appsink.
//!
//! ```text
//! test:  audiotestsrc (20 ms) ---------------------------------------------\
//! mic:   silence + appsrc <- capture pipeline (mic.rs, hot-plug) -> audiomixer -> audioconvert
//!        -> audioresample -> S16LE 48 kHz mono -> [webrtcdsp probe=…] -> opusenc
//! ```
//!
//! The DSP runs at 48 kHz, the rate the speaker's probe runs at (`webrtcdsp` refuses a probe at
//! another rate). `delay-agnostic` is on: the TV or USB speaker adds a delay nothing here knows,
//! and the two pipelines' timestamps do not share a base, so the canceller finds the delay
//! itself from the signals.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::MediaError;
use super::common::{self, make, set_if_present};
use super::mic::{MicCapture, MicSource};
use super::mix::{self, MixerInput};
use super::settings::{AudioCapture, PublishSettings};
use crate::devices::{self, Listing};

/// The audio branch's parts that live as long as the publisher.
#[derive(Default)]
pub(crate) struct AudioBranch {
    /// `test tone 440 Hz`, `microphone hw:1,0`, `microphone feed`.
    pub(crate) label: String,
    mic: Option<MicPlan>,
}

struct MicPlan {
    source: MicSource,
    input: Arc<MixerInput>,
    capture: Mutex<Option<MicCapture>>,
}

impl AudioBranch {
    /// Opens the microphone (in the background: a missing one is retried, never an error).
    pub(crate) fn start_capture(&self) -> Result<(), MediaError> {
        let Some(m) = &self.mic else {
            return Ok(());
        };
        let mut c = m
            .capture
            .lock()
            .map_err(|_| MediaError::NotRunning("microphone (poisoned)".into()))?;
        if c.is_none() {
            *c = Some(MicCapture::start(m.source.clone(), m.input.clone())?);
        }
        Ok(())
    }

    /// Closes the microphone.
    pub(crate) fn stop_capture(&self) {
        if let Some(m) = &self.mic
            && let Ok(mut c) = m.capture.lock()
        {
            c.take();
        }
    }

    /// For a microphone (not the test tone): whether it is open now, and how often it was lost.
    pub(crate) fn mic_state(&self) -> (Option<bool>, u64) {
        let Some(m) = &self.mic else {
            return (None, 0);
        };
        match m.capture.lock().ok().as_deref().and_then(Option::as_ref) {
            Some(c) => (Some(c.on_device()), c.status().lost()),
            None => (Some(false), 0),
        }
    }
}

/// Builds source -> … -> opusenc in `pipeline`; `None` for `capture = "none"`.
pub(crate) fn build(
    pipeline: &gst::Pipeline,
    settings: &PublishSettings,
    listing: Option<&Listing>,
) -> Result<Option<(gst::Element, AudioBranch)>, MediaError> {
    let a = &settings.audio;
    if a.echo_cancel && a.echo_probe.is_none() {
        return Err(MediaError::Setting {
            field: "audio.echo_cancel",
            value: "true".into(),
            expected: "a running Speaker's probe in AudioSettings::echo_probe (start the speaker before publishing)",
        });
    }
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
    let test_label = format!("test tone {} Hz", a.test_tone_hz);
    let source = match &a.capture {
        AudioCapture::None => return Ok(None),
        AudioCapture::Test => Err(test()?),
        AudioCapture::Alsa(pcm) => Ok(MicSource::Alsa(pcm.clone())),
        AudioCapture::Feed(feed) => Ok(MicSource::Feed(feed.clone())),
        AudioCapture::Auto => {
            // The chooser's microphone (USB, HAT), else ALSA's default, else the test tone.
            let chosen = listing.and_then(|l| devices::choose(l, &settings.video.wanted()).capture);
            let opens = |pcm: &str| {
                make("alsasrc", "aprobe", "ALSA capture").and_then(|s| {
                    s.set_property("device", pcm);
                    common::probe(&s)
                })
            };
            let picked = chosen.filter(|pcm| {
                opens(pcm)
                    .inspect_err(|e| tracing::warn!(pcm, error = %e, "audio capture auto: the chosen microphone does not open"))
                    .is_ok()
            });
            match picked {
                Some(pcm) => {
                    tracing::info!(%pcm, "audio capture auto");
                    Ok(MicSource::Alsa(pcm))
                }
                None => match opens("default") {
                    Ok(()) => Ok(MicSource::Alsa("default".into())),
                    Err(e) => {
                        tracing::warn!(error = %e, "audio capture auto: no microphone answers, publishing the test tone");
                        Err(test()?)
                    }
                },
            }
        }
    };
    let (head, label, mic) = match source {
        Err(tone) => {
            pipeline
                .add(&tone)
                .map_err(|e| MediaError::Init(format!("cannot add the test tone: {e}")))?;
            (tone, test_label, None)
        }
        Ok(source) => {
            let mixer = mix::silent_mixer(pipeline, "mic")?;
            let input = Arc::new(MixerInput::add(pipeline, &mixer, "micin")?);
            let label = source.label();
            let plan = MicPlan {
                source,
                input,
                capture: Mutex::new(None),
            };
            (mixer, label, Some(plan))
        }
    };
    let convert = make("audioconvert", "aconvert", "audio format conversion")?;
    let resample = make("audioresample", "aresample", "audio resampling")?;
    let raw = make("capsfilter", "araw", "caps filter")?;
    raw.set_property("caps", mix::s16_mono_caps());
    let enc = make("opusenc", "aenc", "Opus encoder")?;
    enc.set_property_from_str("frame-size", "20");
    enc.set_property("bitrate", a.bitrate_bps.clamp(6_000, 510_000) as i32);
    enc.set_property_from_str("audio-type", "voice");
    set_if_present(&enc, "inband-fec", "true");
    let mut chain = vec![head, convert, resample, raw];
    if a.voice_processing() {
        chain.push(voice_processing(a)?);
    }
    chain.push(enc.clone());
    pipeline
        .add_many(&chain[1..])
        .map_err(|e| MediaError::Init(format!("cannot add audio elements: {e}")))?;
    common::link_all(&chain.iter().collect::<Vec<_>>())?;
    Ok(Some((enc, AudioBranch { label, mic })))
}

/// `webrtcdsp` as `[audio]` asks for it.
fn voice_processing(a: &super::settings::AudioSettings) -> Result<gst::Element, MediaError> {
    let dsp = make("webrtcdsp", "adsp", "voice processing (echo cancellation)")?;
    dsp.set_property("echo-cancel", a.echo_cancel);
    if let Some(probe) = &a.echo_probe {
        dsp.set_property("probe", probe.as_str());
    }
    // The speaker's delay (TV audio, USB buffers) is unknown and may change: let the canceller
    // estimate it from the signals.
    dsp.set_property("delay-agnostic", true);
    // The linear filter removes the echo (by 50 dB and more in tests/media_echo_cancel.rs);
    // the low suppressor level keeps near-end speech while both sides talk (moderate took a
    // near-end tone down by 6 to 14 dB there, low by about 4).
    dsp.set_property_from_str("echo-suppression-level", "low");
    dsp.set_property("noise-suppression", a.noise_suppression);
    dsp.set_property("gain-control", a.gain_control);
    Ok(dsp)
}

//! The speaker: one pipeline for the whole session that mixes every remote stream's decoded
//! audio, passes the mix through the echo probe the microphone's `webrtcdsp` reads, and plays it
//! on the configured output.
//!
//! ```text
//! silence (live) ----------\
//! appsrc per played stream --> audiomixer -> audioconvert -> audioresample -> S16LE 48 kHz mono
//!                                -> webrtcechoprobe name=roomcam-echo-probe-N -> appsink (sync)
//!                                                                                 |
//!                    output pipeline: appsrc -> audioconvert -> audioresample -> alsasink (sync=false)
//! ```
//!
//! Why it lives all session: `webrtcdsp` refuses to start unless its probe exists, so the probe
//! must be there before the first publish and must not come and go with the remote streams. The
//! silence source keeps the mixer (and so the probe) running when no one speaks.
//!
//! The output device is its own small pipeline fed from the mix's appsink, kept open by a
//! [`DeviceLoop`]: a USB speaker that is pulled out takes only that pipeline down; the mix and
//! the probe go on, and the output comes back within a second or two of the device. With
//! `playback = "none"` there is no output pipeline; the appsink alone counts and keeps the last
//! half second for the tests (tone, levels).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use super::MediaError;
use super::common::{self, BusWatch, make};
use super::mix::{self, MixerInput};
use super::reopen::{DeviceLoop, DeviceStatus};
use super::settings::AudioPlayback;
use super::tap::AudioTap;
use super::tone;

/// Mixed audio kept for [`Speaker::recent_samples`] (0.5 s).
const RECENT_SAMPLES: usize = 24_000;
/// A 10 ms block of the mix at or above this RMS (-50 dBFS) counts as sounding.
const SOUNDING_RMS: f32 = 0.003_162;
/// How much mixed audio may wait for the output device (older is dropped).
const OUTPUT_MAX_BYTES: u64 = 9_600; // 100 ms

static NEXT_PROBE: AtomicU64 = AtomicU64::new(0);

/// What the speaker reports (status endpoint, tests).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpeakerStats {
    /// The output: `none`, `default sink` or the ALSA PCM.
    pub output: String,
    /// The output device is open and playing (false for `none` and while it is missing).
    pub on_device: bool,
    /// Times the output device was opened (1 after a clean start, +1 per recovery).
    pub output_opened: u64,
    /// Times the output device was lost.
    pub output_lost: u64,
    /// 10 ms buffers mixed so far (silence included).
    pub buffers: u64,
    /// Remote streams currently mixed in.
    pub inputs: usize,
    /// Frequency of the mix over the last half second, when it is a clear tone.
    pub tone_hz: Option<f64>,
    /// Share of the last half second's 10 ms blocks of the mix that sound (RMS of -50 dBFS or
    /// more): 1.0 while a remote stream plays steadily, lower when its audio reaches the mix in
    /// bursts. `None` until the mix has run a quarter of a second.
    pub sounding_share: Option<f64>,
}

#[derive(Default)]
struct Mixed {
    buffers: u64,
    recent: VecDeque<f32>,
}

type OutputSlot = Arc<Mutex<Option<gst_app::AppSrc>>>;

/// The session-long speaker pipeline. Create it before publishing (its probe must exist).
pub struct Speaker {
    pipeline: gst::Pipeline,
    mixer: gst::Element,
    probe_name: String,
    mixed: Arc<Mutex<Mixed>>,
    output_label: String,
    output_status: Option<Arc<DeviceStatus>>,
    _output_loop: Option<DeviceLoop>,
    inputs: Arc<AtomicUsize>,
    next_input: AtomicU64,
    bus: BusWatch,
}

impl Speaker {
    /// Builds and starts the mix; the output device opens in the background (a missing device is
    /// not an error: the speaker runs without it and keeps trying).
    pub fn start(output: &AudioPlayback) -> Result<Self, MediaError> {
        match output {
            AudioPlayback::None => Self::start_on(Output::None),
            other => Self::start_on(Output::Device(other.clone())),
        }
    }

    /// The same with its output going to `tap` (a speaker without hardware, for tests).
    pub fn start_with_tap(tap: &AudioTap) -> Result<Self, MediaError> {
        Self::start_on(Output::Tap(tap.clone()))
    }

    fn start_on(output: Output) -> Result<Self, MediaError> {
        common::init()?;
        let n = NEXT_PROBE.fetch_add(1, Ordering::Relaxed);
        let probe_name = format!("roomcam-echo-probe-{}-{n}", std::process::id());
        let pipeline = gst::Pipeline::with_name(&format!("speaker{n}"));
        let mixer = mix::silent_mixer(&pipeline, "spk")?;
        let convert = make("audioconvert", "spkconvert", "audio format conversion")?;
        let resample = make("audioresample", "spkresample", "audio resampling")?;
        let caps = make("capsfilter", "spkcaps", "caps filter")?;
        caps.set_property("caps", mix::s16_mono_caps());
        let probe = make("webrtcechoprobe", &probe_name, "echo canceller probe")?;
        let sink = gst_app::AppSink::builder()
            .name("spksink")
            .sync(true)
            .max_buffers(8)
            .drop(true)
            .build();
        sink.set_property("async", false);
        let chain = [&convert, &resample, &caps, &probe, sink.upcast_ref()];
        pipeline
            .add_many(chain)
            .map_err(|e| MediaError::Init(format!("cannot add speaker elements: {e}")))?;
        common::link_all(&[
            &mixer,
            &convert,
            &resample,
            &caps,
            &probe,
            sink.upcast_ref(),
        ])?;

        let slot: OutputSlot = Arc::new(Mutex::new(None));
        let mixed = Arc::new(Mutex::new(Mixed::default()));
        let (m, out) = (mixed.clone(), slot.clone());
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer_owned().ok_or(gst::FlowError::Error)?;
                    if let Ok(map) = buffer.map_readable()
                        && let Ok(mut m) = m.lock()
                    {
                        m.buffers += 1;
                        for s in tone::first_channel_s16(map.as_slice(), 1) {
                            if m.recent.len() >= RECENT_SAMPLES {
                                m.recent.pop_front();
                            }
                            m.recent.push_back(s);
                        }
                    }
                    if let Ok(o) = out.lock()
                        && let Some(src) = o.as_ref()
                    {
                        let mut b = buffer;
                        let bm = b.make_mut();
                        bm.set_pts(gst::ClockTime::NONE);
                        bm.set_dts(gst::ClockTime::NONE);
                        // Refused while the device is away: dropped, the mix goes on.
                        let _ = src.push_buffer(b);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );

        let bus = BusWatch::start(&pipeline)?;
        if let Err(e) = common::change_state(&pipeline, gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            return Err(bus
                .wait_error(std::time::Duration::from_secs(1))
                .unwrap_or(e));
        }
        let (output_label, output_status, output_loop) = match output {
            Output::None | Output::Device(AudioPlayback::None) => ("none".to_string(), None, None),
            other => {
                let label = match &other {
                    Output::Device(AudioPlayback::Alsa(pcm)) => pcm.clone(),
                    Output::Tap(_) => "tap".to_string(),
                    _ => "default sink".to_string(),
                };
                // Fail now, not in the loop, when the element itself is missing.
                if let Output::Device(d) = &other {
                    output_sink(d)?;
                }
                let status = Arc::new(DeviceStatus::default());
                let opener = Box::new(move || open_output(&other, &slot));
                let lp =
                    DeviceLoop::spawn(format!("speaker {label}"), None, opener, status.clone())?;
                (label, Some(status), Some(lp))
            }
        };
        tracing::info!(output = %output_label, probe = %probe_name, "speaker started");
        Ok(Self {
            pipeline,
            mixer,
            probe_name,
            mixed,
            output_label,
            output_status,
            _output_loop: output_loop,
            inputs: Arc::new(AtomicUsize::new(0)),
            next_input: AtomicU64::new(0),
            bus,
        })
    }

    /// The `webrtcechoprobe`'s name, for `webrtcdsp probe=…` (unique per speaker).
    pub fn probe_name(&self) -> &str {
        &self.probe_name
    }

    /// A new input (one remote stream's decoded audio); removed when dropped.
    pub fn add_input(&self) -> Result<SpeakerInput, MediaError> {
        let n = self.next_input.fetch_add(1, Ordering::Relaxed);
        let input = MixerInput::add(&self.pipeline, &self.mixer, &format!("spkin{n}"))?;
        self.inputs.fetch_add(1, Ordering::Relaxed);
        Ok(SpeakerInput {
            input: Mutex::new(Some(input)),
            inputs: self.inputs.clone(),
        })
    }

    /// The mix over the last half second (what went to the output), as floats in [-1, 1).
    pub fn recent_samples(&self) -> Vec<f32> {
        self.mixed
            .lock()
            .map(|m| m.recent.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The first error of the mix pipeline (its elements, not the output device's).
    pub fn error(&self) -> Option<MediaError> {
        self.bus.error()
    }

    pub fn stats(&self) -> SpeakerStats {
        let (buffers, recent) = self
            .mixed
            .lock()
            .map(|m| (m.buffers, m.recent.iter().copied().collect::<Vec<f32>>()))
            .unwrap_or_default();
        let s = self.output_status.as_deref();
        SpeakerStats {
            output: self.output_label.clone(),
            on_device: s.is_some_and(DeviceStatus::on_device),
            output_opened: s.map_or(0, DeviceStatus::opened),
            output_lost: s.map_or(0, DeviceStatus::lost),
            buffers,
            inputs: self.inputs.load(Ordering::Relaxed),
            tone_hz: (recent.len() >= RECENT_SAMPLES / 2)
                .then(|| tone::estimate_hz(&recent, mix::RATE as u32, 0.01))
                .flatten(),
            sounding_share: (recent.len() >= RECENT_SAMPLES / 2)
                .then(|| tone::sounding_share(&recent, mix::RATE as usize / 100, SOUNDING_RMS))
                .flatten(),
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// One remote stream's way into the mix. S16LE 48 kHz mono, pushed when it is due.
pub struct SpeakerInput {
    input: Mutex<Option<MixerInput>>,
    inputs: Arc<AtomicUsize>,
}

impl SpeakerInput {
    /// Queues due PCM (S16LE 48 kHz mono); `false` when the input is gone or not running.
    pub fn push_pcm(&self, pcm: &[u8]) -> bool {
        self.input
            .lock()
            .ok()
            .and_then(|i| i.as_ref().map(|i| i.push_pcm(pcm)))
            .unwrap_or(false)
    }

    /// Queues a decoded buffer of S16LE 48 kHz mono.
    pub fn push_buffer(&self, buffer: gst::Buffer) -> bool {
        self.input
            .lock()
            .ok()
            .and_then(|i| i.as_ref().map(|i| i.push(buffer)))
            .unwrap_or(false)
    }

    /// Buffers taken in so far.
    pub fn pushed(&self) -> u64 {
        self.input
            .lock()
            .ok()
            .and_then(|i| i.as_ref().map(MixerInput::pushed))
            .unwrap_or(0)
    }

    /// Takes this stream out of the mix (idempotent; dropping does it too).
    pub fn remove(&self) {
        if let Ok(mut i) = self.input.lock()
            && let Some(mut input) = i.take()
        {
            input.remove();
            self.inputs.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for SpeakerInput {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The output device's sink. It plays the mix as it comes (`sync=false`): the mix is paced by
/// the clock already (its appsink syncs), and the output pipeline stamps buffers when they
/// arrive, so syncing again only adds a way to lose audio. A synced audio sink drops samples
/// that reach it after their time and writes the next ones contiguous to them, so once one
/// buffer is held up (a busy CPU: the emulated Pi of the QEMU test dropped most of the tone in
/// 40 ms bursts) everything after it stays late and is dropped until the sink resyncs. Unsynced,
/// a late buffer goes to the next free place in the ring buffer. The latency stays bounded: the
/// ring buffer (40 ms) blocks when full and the input queue before it drops its oldest audio
/// past `OUTPUT_MAX_BYTES`.
fn output_sink(output: &AudioPlayback) -> Result<gst::Element, MediaError> {
    let sink = match output {
        AudioPlayback::Alsa(pcm) => {
            let sink = make("alsasink", "spkout", "ALSA playback")?;
            sink.set_property("device", pcm.as_str());
            // 40 ms ring buffer in 10 ms periods: the default 200 ms would be audible delay.
            sink.set_property("buffer-time", 40_000i64);
            sink.set_property("latency-time", 10_000i64);
            sink
        }
        _ => make("autoaudiosink", "spkout", "default audio output")?,
    };
    sink.set_property("sync", false);
    Ok(sink)
}

/// Where the mix goes.
enum Output {
    None,
    Device(AudioPlayback),
    Tap(AudioTap),
}

/// The output pipeline: appsrc -> audioconvert -> audioresample -> the device (unsynced, see
/// [`output_sink`]), on the system clock (the mix's clock): the device never becomes the clock
/// of a pipeline whose pace is the mix's.
fn open_output(output: &Output, slot: &OutputSlot) -> Result<gst::Pipeline, MediaError> {
    let pipeline = gst::Pipeline::with_name("speaker-out");
    pipeline.use_clock(Some(&gst::SystemClock::obtain()));
    let src = gst_app::AppSrc::builder()
        .name("spkoutsrc")
        .caps(&mix::s16_mono_caps())
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_bytes(OUTPUT_MAX_BYTES)
        .block(false)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .build();
    let convert = make("audioconvert", "spkoutconvert", "audio format conversion")?;
    let resample = make("audioresample", "spkoutresample", "audio resampling")?;
    let sink = match output {
        Output::Tap(tap) => tap.open()?,
        Output::Device(d) => output_sink(d)?,
        Output::None => return Err(MediaError::NotRunning("speaker output none".into())),
    };
    pipeline
        .add_many([src.upcast_ref(), &convert, &resample, &sink])
        .map_err(|e| MediaError::Init(format!("cannot add speaker output elements: {e}")))?;
    common::link_all(&[src.upcast_ref(), &convert, &resample, &sink])?;
    // Opening the device happens at READY: fail here, so the loop retries, when it is away.
    if sink.set_state(gst::State::Ready).is_err() {
        let _ = sink.set_state(gst::State::Null);
        return Err(MediaError::UnusableElement {
            element: sink.name().to_string(),
            reason: "the speaker does not open (unplugged, or busy)".into(),
        });
    }
    if let Ok(mut s) = slot.lock() {
        *s = Some(src);
    }
    Ok(pipeline)
}

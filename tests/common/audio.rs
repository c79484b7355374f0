//! Helpers for the audio tests: sine chunks, a real-time pacer, and an Opus decoder (GStreamer's
//! own `opusdec`) for what a publisher sent.

use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roomcam::media::{
    AudioSettings, EncodedFrame, EncoderChoice, FrameKind, PublishSettings, VideoSettings,
    VideoSource,
};
use tokio::sync::mpsc::Receiver;

pub const RATE: u32 = 48_000;
/// 10 ms at 48 kHz.
pub const CHUNK: usize = 480;

/// A sine generator that keeps its phase across chunks.
pub struct Sine {
    hz: f64,
    amplitude: f64,
    n: u64,
}

impl Sine {
    pub fn new(hz: f64, amplitude: f64) -> Self {
        Self {
            hz,
            amplitude,
            n: 0,
        }
    }

    pub fn next_chunk(&mut self, len: usize) -> Vec<f64> {
        (0..len)
            .map(|_| {
                let t = self.n as f64 / f64::from(RATE);
                self.n += 1;
                self.amplitude * (2.0 * std::f64::consts::PI * self.hz * t).sin()
            })
            .collect()
    }
}

pub fn to_s16(samples: &[f64]) -> Vec<i16> {
    samples
        .iter()
        .map(|v| (v.clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

pub fn to_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Calls `tick(i)` every 10 ms of wall-clock time (catching up after a late wake-up) for `total`.
pub fn paced(total: Duration, mut tick: impl FnMut(u64)) {
    let start = Instant::now();
    let ticks = (total.as_millis() / 10) as u64;
    for i in 0..ticks {
        let due = start + Duration::from_millis(10 * i);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        tick(i);
    }
}

/// A publisher of small test video and `audio` (video is not what these tests look at).
pub fn publish_settings(audio: AudioSettings) -> PublishSettings {
    PublishSettings {
        video: VideoSettings {
            source: VideoSource::Test,
            width: 160,
            height: 120,
            fps: 10,
            encoder: EncoderChoice::X264enc,
            max_bitrate_kbps: 300,
        },
        audio,
        channel_capacity: 1024,
    }
}

/// The audio frames waiting in `rx`.
pub fn drain_audio(rx: &mut Receiver<EncodedFrame>, into: &mut Vec<EncodedFrame>) {
    while let Ok(f) = rx.try_recv() {
        if f.kind == FrameKind::Audio {
            into.push(f);
        }
    }
}

/// Decodes Opus packets (in order) to mono floats at 48 kHz with `opusdec`.
pub fn decode_opus(frames: &[EncodedFrame]) -> Vec<f32> {
    roomcam::media::init().expect("gstreamer");
    let pipeline = gst::Pipeline::new();
    let src = gst_app::AppSrc::builder()
        .caps(
            &gst::Caps::builder("audio/x-opus")
                .field("channel-mapping-family", 0i32)
                .field("channels", 1i32)
                .field("rate", 48_000i32)
                .build(),
        )
        .format(gst::Format::Time)
        .build();
    let dec = gst::ElementFactory::make("opusdec").build().unwrap();
    let conv = gst::ElementFactory::make("audioconvert").build().unwrap();
    let sink = gst_app::AppSink::builder()
        .caps(
            &gst::Caps::builder("audio/x-raw")
                .field("format", "S16LE")
                .field("rate", 48_000i32)
                .field("channels", 1i32)
                .build(),
        )
        .sync(false)
        .build();
    pipeline
        .add_many([src.upcast_ref(), &dec, &conv, sink.upcast_ref()])
        .unwrap();
    gst::Element::link_many([src.upcast_ref(), &dec, &conv, sink.upcast_ref()]).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let mut b = gst::Buffer::from_slice(f.data.clone());
        let bm = b.get_mut().unwrap();
        bm.set_pts(gst::ClockTime::from_mseconds(20 * i as u64));
        bm.set_duration(gst::ClockTime::from_mseconds(20));
        src.push_buffer(b).unwrap();
    }
    src.end_of_stream().unwrap();
    let mut out = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
        let buf = sample.buffer().unwrap();
        let map = buf.map_readable().unwrap();
        out.extend(
            map.chunks_exact(2)
                .map(|c| f32::from(i16::from_le_bytes([c[0], c[1]])) / 32768.0),
        );
    }
    pipeline.set_state(gst::State::Null).unwrap();
    out
}

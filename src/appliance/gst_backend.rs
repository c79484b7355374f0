//! The engine's [`MediaBackend`] on GStreamer: a [`PublishPipeline`] per published stream and a
//! [`PlayPipeline`] per played stream, built from the device config.
//!
//! Play timing: each received frame's presentation time comes from the sender's RTP time.
//! Our engine gives audio and video of a stream one RTP origin; for other senders (browsers,
//! with random origins) each kind is anchored at its first arrival, which keeps them within
//! network jitter of each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::config::DeviceConfig;
use super::status::{MediaStats, PlayerMediaStats};
use crate::engine::{
    CaptureControl, EncodedFrame, MediaBackend, PlaybackSink, ReceivedFrame, TrackKind,
};
use crate::media::{
    AudioPlayback, DisplaySink, FrameKind, MediaError, PlayPipeline, PlaySettings, PublishPipeline,
    PublishSettings, Screen, ScreenSettings, Speaker,
};

/// Builds the media settings from the device config.
pub fn settings_from(cfg: &DeviceConfig) -> Result<(PublishSettings, PlaySettings), MediaError> {
    let mut publish = PublishSettings::default();
    publish.video.source = cfg.video.source.parse()?;
    publish.video.width = cfg.video.width;
    publish.video.height = cfg.video.height;
    publish.video.fps = cfg.video.fps;
    publish.video.encoder = match cfg.video.encoder {
        super::config::EncoderChoice::Auto => crate::media::EncoderChoice::Auto,
        super::config::EncoderChoice::V4l2h264enc => crate::media::EncoderChoice::V4l2h264enc,
        super::config::EncoderChoice::X264enc => crate::media::EncoderChoice::X264enc,
    };
    publish.video.max_bitrate_kbps = cfg.video.max_bitrate_kbps;
    publish.audio.capture = cfg.audio.capture.parse()?;
    publish.audio.echo_cancel = cfg.audio.echo_cancel;
    publish.audio.noise_suppression = cfg.audio.noise_suppression;
    publish.audio.gain_control = cfg.audio.gain_control;
    publish.video.validate()?;
    let play = PlaySettings {
        display: match cfg.display.sink {
            super::config::SinkChoice::Auto => DisplaySink::Auto,
            super::config::SinkChoice::Kms => DisplaySink::Kms,
            super::config::SinkChoice::Window => DisplaySink::Window,
            super::config::SinkChoice::None => DisplaySink::None,
        },
        playback: resolve_playback(cfg.audio.playback.parse::<AudioPlayback>()?),
        ..PlaySettings::default()
    };
    Ok((publish, play))
}

/// The screen settings from `[display]` (and `[video] fps` for the picture rate).
pub fn screen_settings_from(cfg: &DeviceConfig) -> ScreenSettings {
    let named = |s: &str| (s != "auto").then(|| s.to_string());
    ScreenSettings {
        sink: match cfg.display.sink {
            super::config::SinkChoice::Auto => DisplaySink::Auto,
            super::config::SinkChoice::Kms => DisplaySink::Kms,
            super::config::SinkChoice::Window => DisplaySink::Window,
            super::config::SinkChoice::None => DisplaySink::None,
        },
        connector: named(&cfg.display.connector),
        mode: named(&cfg.display.mode).and_then(|m| super::config::parse_mode(&m)),
        fps: cfg.video.fps.clamp(1, 60),
        ..ScreenSettings::default()
    }
}

/// `playback = "auto"`: the speaker the device chooser picks (a USB speakerphone, the HDMI
/// screen's audio, other USB, a HAT, the headphone jack), else ALSA's `default` PCM.
fn resolve_playback(playback: AudioPlayback) -> AudioPlayback {
    if playback != AudioPlayback::Auto {
        return playback;
    }
    let listing = crate::devices::discover();
    match crate::devices::choose(&listing, &crate::devices::Wanted::default()).playback {
        Some(pcm) => {
            tracing::info!(%pcm, "audio playback auto");
            AudioPlayback::Alsa(pcm)
        }
        None => {
            tracing::info!("audio playback auto: no speaker found, using ALSA's default PCM");
            AudioPlayback::Alsa("default".into())
        }
    }
}

#[derive(Default)]
struct Registry {
    publishers: HashMap<String, Arc<PublishPipeline>>,
    players: HashMap<String, Arc<PlayPipeline>>,
    preview: Option<std::sync::Weak<crate::media::PreviewPipeline>>,
    speaker: Option<Arc<Speaker>>,
    /// The session's screen: played streams are composed on it (none with `sink = "none"`).
    screen: Option<Screen>,
    /// `[display] preview`: the published camera as a picture-in-picture on the screen.
    screen_preview: bool,
}

/// The backend. Clone the [`GstBackend::stats_reader`] before handing the backend to the engine.
pub struct GstBackend {
    publish: PublishSettings,
    play: PlaySettings,
    registry: Arc<Mutex<Registry>>,
    /// All played streams' audio mixes here; its echo probe is what the microphone's echo
    /// canceller reads, so it starts with the backend, before any publish, and lives as long.
    speaker: Arc<Speaker>,
}

impl GstBackend {
    /// Starts the session's speaker (its output device may be missing: it is retried) and keeps
    /// the settings for the pipelines to come.
    pub fn new(mut publish: PublishSettings, play: PlaySettings) -> Result<Self, MediaError> {
        crate::media::init()?;
        let speaker = Arc::new(Speaker::start(&play.playback)?);
        if publish.audio.echo_cancel {
            publish.audio.echo_probe = Some(speaker.probe_name().to_string());
        }
        let registry = Arc::new(Mutex::new(Registry {
            speaker: Some(speaker.clone()),
            ..Registry::default()
        }));
        Ok(GstBackend {
            publish,
            play,
            registry,
            speaker,
        })
    }

    /// The backend for a device config: media settings from it and, unless `[display] sink =
    /// "none"`, the session's [`Screen`] (idle card until someone is shown).
    pub fn from_config(cfg: &DeviceConfig) -> Result<Self, MediaError> {
        let (publish, play) = settings_from(cfg)?;
        let backend = GstBackend::new(publish, play)?;
        let settings = screen_settings_from(cfg);
        if settings.sink.resolve(DisplaySink::desktop_present()) != DisplaySink::None {
            let screen = Screen::start(&settings, "Connecting…")?;
            backend.attach_screen(screen, cfg.display.preview);
        }
        Ok(backend)
    }

    /// Shows played streams (and, with `preview`, the published camera) on `screen` from now on.
    pub fn attach_screen(&self, screen: Screen, preview: bool) {
        if let Ok(mut r) = self.registry.lock() {
            r.screen = Some(screen);
            r.screen_preview = preview;
        }
    }

    /// The session's screen, when there is one.
    pub fn screen(&self) -> Option<Screen> {
        self.registry.lock().ok()?.screen.clone()
    }

    /// A function that reads the pipelines' counters (for the status endpoint).
    pub fn stats_reader(&self) -> Arc<dyn Fn() -> MediaStats + Send + Sync> {
        let reg = self.registry.clone();
        Arc::new(move || {
            let Ok(r) = reg.lock() else {
                return MediaStats::default();
            };
            let mut m = MediaStats::default();
            if let Some(p) = r.publishers.values().next() {
                let s = p.stats();
                m.encoder = s.encoder;
                m.bitrate_kbps = s.bitrate_kbps;
                m.encode_time_us_mean = s.encode_time_us_mean;
                m.video_source = s.video_source;
                m.camera_unavailable = s.showing_card;
                m.audio_capture = s.audio_source;
                m.audio_capture_on_device = s.mic_on_device;
            }
            if let Some(sp) = &r.speaker {
                let s = sp.stats();
                m.audio_playback = s.output;
                m.audio_playback_on_device = s.on_device;
                m.audio_mix_buffers = s.buffers;
                m.audio_mix_tone_hz = s.tone_hz;
                m.audio_mix_sounding_share = s.sounding_share;
            }
            m.screen = r.screen.as_ref().map(|s| {
                let s = s.stats();
                super::status::ScreenStatus {
                    sink: s.sink,
                    output_running: s.output_running,
                    connector: s.connector,
                    width: s.width,
                    height: s.height,
                    shown: s.shown,
                    preview: s.preview,
                    idle_text: s.idle_text,
                    output_starts: s.output_starts,
                    frames_composed: s.frames_composed,
                    frames_displayed: s.frames_displayed,
                }
            });
            for (id, p) in &r.players {
                let s = p.stats();
                m.players.insert(
                    id.clone(),
                    PlayerMediaStats {
                        video_frames_decoded: s.video_frames_decoded,
                        audio_frames_decoded: s.audio_frames_decoded,
                        width: s.width,
                        height: s.height,
                        latency_ms_p50: s.latency_ms_p50.map(f64::from),
                        latency_ms_p95: s.latency_ms_p95.map(f64::from),
                        late_frames: s.late_frames,
                        audio_frames_dropped: s.audio_frames_dropped,
                        playout_adjustments: s.playout_adjustments,
                    },
                );
            }
            m
        })
    }

    /// A handle that finds this backend's pipelines after the backend went to the engine.
    pub fn handle(&self) -> GstHandle {
        GstHandle {
            registry: self.registry.clone(),
        }
    }
}

/// Finds a backend's running pipelines (tests and benchmarks read their counters).
#[derive(Clone)]
pub struct GstHandle {
    registry: Arc<Mutex<Registry>>,
}

impl GstHandle {
    /// The play pipeline of a stream, while it plays.
    pub fn player(&self, stream_id: &str) -> Option<Arc<PlayPipeline>> {
        self.registry.lock().ok()?.players.get(stream_id).cloned()
    }

    /// The session's speaker (the mix of all played streams).
    pub fn speaker(&self) -> Option<Arc<Speaker>> {
        self.registry.lock().ok()?.speaker.clone()
    }

    /// Pictures the local preview has shown, while it runs.
    pub fn preview_frames(&self) -> Option<u64> {
        let r = self.registry.lock().ok()?;
        r.preview.as_ref()?.upgrade().map(|p| p.frames())
    }

    /// The publish pipeline of a stream, while it publishes.
    pub fn publisher(&self, stream_id: &str) -> Option<Arc<PublishPipeline>> {
        self.registry
            .lock()
            .ok()?
            .publishers
            .get(stream_id)
            .cloned()
    }
}

struct Capture {
    stream_id: String,
    pipeline: Arc<PublishPipeline>,
    forward: tokio::task::JoinHandle<()>,
    registry: Arc<Mutex<Registry>>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.forward.abort();
        self.pipeline.stop();
        if let Ok(mut r) = self.registry.lock() {
            r.publishers.remove(&self.stream_id);
        }
    }
}

/// Opus and RTP overhead left out of the video budget.
const AUDIO_BUDGET_BPS: u64 = 64_000;

impl CaptureControl for Capture {
    fn request_keyframe(&mut self) {
        self.pipeline.request_keyframe();
    }
    fn set_target_bitrate(&mut self, bps: u64) {
        let video = bps.saturating_sub(AUDIO_BUDGET_BPS) / 1000;
        self.pipeline
            .set_bitrate_kbps(u32::try_from(video).unwrap_or(u32::MAX));
    }
}

struct KindClock {
    first_rtp: u64,
    first_arrival: Instant,
}

struct Playback {
    stream_id: String,
    pipeline: Arc<PlayPipeline>,
    registry: Arc<Mutex<Registry>>,
    origin: Option<Instant>,
    video: Option<KindClock>,
    audio: Option<KindClock>,
    /// When audio and video share one RTP origin (our engine's senders do), the sender time
    /// (µs) of the first kind's first frame: both kinds are then placed on that one timeline.
    shared_origin: Option<u64>,
}

impl Drop for Playback {
    fn drop(&mut self) {
        self.pipeline.stop();
        if let Ok(mut r) = self.registry.lock() {
            r.players.remove(&self.stream_id);
        }
    }
}

impl Playback {
    fn secs(rtp: u64, kind: TrackKind) -> f64 {
        rtp as f64 / kind.clock_rate() as f64
    }

    fn pts(&mut self, f: &ReceivedFrame) -> Duration {
        let origin = *self.origin.get_or_insert(f.arrival);
        let (mine, other) = match f.kind {
            TrackKind::Video => (&mut self.video, &self.audio),
            TrackKind::Audio => (&mut self.audio, &self.video),
        };
        if mine.is_none() {
            *mine = Some(KindClock {
                first_rtp: f.rtp_time,
                first_arrival: f.arrival,
            });
            // The second kind to arrive tells whether both share one RTP origin: its sender
            // time must then sit where the first kind's clock says, give or take a second.
            if let Some(o) = other {
                let other_kind = match f.kind {
                    TrackKind::Video => TrackKind::Audio,
                    TrackKind::Audio => TrackKind::Video,
                };
                let predicted = Self::secs(o.first_rtp, other_kind)
                    + f.arrival
                        .saturating_duration_since(o.first_arrival)
                        .as_secs_f64();
                let actual = Self::secs(f.rtp_time, f.kind);
                if (actual - predicted).abs() < 1.0 {
                    self.shared_origin = Some(o.first_rtp * 1_000_000 / other_kind.clock_rate());
                }
            }
        }
        if let Some(origin_us) = self.shared_origin {
            // One sender timeline: lip sync follows the sender's capture clock exactly.
            let us = f.rtp_time * 1_000_000 / f.kind.clock_rate();
            let first = match (&self.video, &self.audio) {
                (Some(v), Some(a)) => v.first_arrival.min(a.first_arrival),
                _ => origin,
            };
            return first.saturating_duration_since(origin)
                + Duration::from_micros(us.saturating_sub(origin_us));
        }
        let Some(k) = (match f.kind {
            TrackKind::Video => &self.video,
            TrackKind::Audio => &self.audio,
        }) else {
            return Duration::ZERO;
        };
        let since_first = Duration::from_nanos(
            (u128::from(f.rtp_time.saturating_sub(k.first_rtp)) * 1_000_000_000
                / u128::from(f.kind.clock_rate())) as u64,
        );
        k.first_arrival.saturating_duration_since(origin) + since_first
    }
}

impl PlaybackSink for Playback {
    fn push(&mut self, frame: &ReceivedFrame) -> bool {
        let pts = self.pts(frame);
        let r = match frame.kind {
            TrackKind::Video => self.pipeline.push_video(frame.data.clone(), pts),
            TrackKind::Audio => self.pipeline.push_audio(frame.data.clone(), pts),
        };
        match r {
            Ok(crate::media::PushOutcome::Queued) => false,
            Ok(crate::media::PushOutcome::WaitingForKeyframe)
            | Ok(crate::media::PushOutcome::Dropped) => frame.kind == TrackKind::Video,
            Err(e) => {
                tracing::warn!(stream = %self.stream_id, error = %e, "play pipeline refused a frame");
                false
            }
        }
    }
}

impl MediaBackend for GstBackend {
    fn start_capture(
        &mut self,
        stream_id: &str,
        frames: mpsc::Sender<EncodedFrame>,
    ) -> Result<Box<dyn CaptureControl>, String> {
        let (mut pipeline, mut rx) =
            PublishPipeline::new(&self.publish).map_err(|e| e.to_string())?;
        if let Err(e) = pipeline.start() {
            // A hardware encoder that opens but fails at start (caps it refuses, a busy codec):
            // `auto` falls back to software.
            let hw_auto = self.publish.video.encoder == crate::media::EncoderChoice::Auto
                && pipeline.stats().encoder == "v4l2h264enc";
            if !hw_auto {
                return Err(e.to_string());
            }
            tracing::warn!(error = %e, "v4l2h264enc failed at start; falling back to x264enc");
            pipeline.stop();
            drop(pipeline);
            let mut software = self.publish.clone();
            software.video.encoder = crate::media::EncoderChoice::X264enc;
            (pipeline, rx) = PublishPipeline::new(&software).map_err(|e| e.to_string())?;
            pipeline.start().map_err(|e| e.to_string())?;
        }
        let pipeline = Arc::new(pipeline);
        if let Ok(mut r) = self.registry.lock() {
            if r.screen_preview
                && let Some(screen) = &r.screen
            {
                match screen.add_preview() {
                    Ok(input) => pipeline.show_preview(input),
                    Err(e) => tracing::warn!(error = %e, "no picture-in-picture preview"),
                }
            }
            r.publishers.insert(stream_id.to_string(), pipeline.clone());
        }
        let id = stream_id.to_string();
        let forward = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                let kind = match f.kind {
                    FrameKind::Video => TrackKind::Video,
                    FrameKind::Audio => TrackKind::Audio,
                };
                let frame = EncodedFrame {
                    stream_id: id.clone(),
                    kind,
                    pts: f.pts,
                    data: f.data,
                };
                if frames.send(frame).await.is_err() {
                    return;
                }
            }
        });
        Ok(Box::new(Capture {
            stream_id: stream_id.to_string(),
            pipeline,
            forward,
            registry: self.registry.clone(),
        }))
    }

    fn start_preview(&mut self) -> Result<Box<dyn Send>, String> {
        let p = Arc::new(
            crate::media::PreviewPipeline::start(&self.publish.video, self.play.display)
                .map_err(|e| e.to_string())?,
        );
        if let Ok(mut r) = self.registry.lock() {
            r.preview = Some(Arc::downgrade(&p));
        }
        Ok(Box::new(p))
    }

    fn start_playback(&mut self, stream_id: &str) -> Result<Box<dyn PlaybackSink>, String> {
        let screen = self.registry.lock().ok().and_then(|r| r.screen.clone());
        let pipeline = match screen {
            Some(s) => {
                let input = s.add_participant().map_err(|e| e.to_string())?;
                PlayPipeline::with_speaker_and_screen(&self.play, &self.speaker, input)
            }
            None => PlayPipeline::with_speaker(&self.play, &self.speaker),
        }
        .map_err(|e| e.to_string())?;
        pipeline.start().map_err(|e| e.to_string())?;
        let pipeline = Arc::new(pipeline);
        if let Ok(mut r) = self.registry.lock() {
            r.players.insert(stream_id.to_string(), pipeline.clone());
        }
        Ok(Box::new(Playback {
            stream_id: stream_id.to_string(),
            pipeline,
            registry: self.registry.clone(),
            origin: None,
            video: None,
            audio: None,
            shared_origin: None,
        }))
    }
}

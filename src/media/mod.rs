//! Media: GStreamer capture, encode, decode and output, ending at `appsink` and starting at
//! `appsrc` so WebRTC (str0m, in the engine) stays out of GStreamer.
//!
//! | module | owns | I/O |
//! |---|---|---|
//! | [`settings`] | `[video]`, `[audio]`, `[display]` as typed settings | none |
//! | [`stamp`] | the frame stamp drawn into test video and read back after decoding | none (pure) |
//! | [`tone`] | frequency of a decoded tone (zero crossings) | none (pure) |
//! | [`h264`] | Annex-B NAL scanning (IDR detection) | none (pure) |
//! | [`playout`] | sender pts to player running time, late frames, no creeping delay | none (pure) |
//! | [`stats`] | latency window, frame-order check | none (pure) |
//! | `publish` | [`PublishPipeline`]: capture -> H.264 / Opus -> [`EncodedFrame`]s | GStreamer |
//! | [`layout`] | where each picture goes on the screen (1-4 participants, preview) | none (pure) |
//! | [`display`] | the KMS connector (sysfs), its mode, `kmssink` settings | sysfs |
//! | `screen` | [`Screen`]: the session's compositor, idle card, display output | GStreamer |
//! | `camera` | the publisher's capture pipeline, the "Camera unavailable" card, reopening | GStreamer |
//! | `play` | [`PlayPipeline`]: H.264 / Opus in -> decode -> display and speaker | GStreamer |
//! | `speaker` | [`Speaker`]: the session-long mix of all remote audio, echo probe, output | GStreamer |
//! | `mix` | a live `audiomixer` fed with silence, appsrc inputs added and removed at runtime | GStreamer |
//! | `publish_audio` | the publisher's audio branch: mic or tone, `webrtcdsp`, Opus | GStreamer |
//! | `mic` | microphone capture in its own pipeline (hot-plug), [`AudioFeed`] | GStreamer |
//! | `tap` | [`AudioTap`]: a speaker output a program reads and can unplug (tests) | GStreamer |
//! | `reopen` | the thread that reopens a vanished audio device every second | GStreamer |
//!
//! Threads: GStreamer's streaming threads run the appsink callbacks, which never block (a full
//! channel drops the frame and counts it) and never panic; one small bus thread per pipeline
//! turns an error message into [`MediaError::Pipeline`] and stops the pipeline. Every wait has a
//! timeout. `docs/media.md` has the pipeline graphs and the choices behind them.

mod camera;
mod common;
pub mod display;
mod error;
pub mod h264;
pub mod layout;
mod mic;
mod mix;
mod mix_timeline;
mod play;
pub mod playout;
mod publish;
mod publish_audio;
mod reopen;
mod screen;
pub mod settings;
mod speaker;
pub mod stamp;
pub mod stats;
mod tap;
pub mod tone;
mod warn_throttle;

pub use camera::{CAMERA_CARD_TEXT, REOPEN_EVERY, SourceOpener, render_card};
pub use common::{V4L2_FORCE_DRAIN, init, prepare_process_env};
pub use error::MediaError;
pub use mic::AudioFeed;
pub use play::{PlayPipeline, PlayStats, PushOutcome};
pub use publish::{
    EncodedFrame, FIRST_FRAME_TIMEOUT, FrameKind, PreviewPipeline, PublishPipeline, PublishStats,
};
pub use screen::{CONNECTOR_POLL, Screen, ScreenInput, ScreenSettings, ScreenStats, Snapshot};
pub use settings::{
    AudioCapture, AudioPlayback, AudioSettings, DisplaySink, EncoderChoice, PlaySettings,
    PublishSettings, VideoSettings, VideoSource,
};
pub use speaker::{Speaker, SpeakerInput, SpeakerStats};
pub use tap::AudioTap;

#[cfg(test)]
mod tests {
    /// The engine keeps pipelines in its adapter task and pushes from other threads.
    #[test]
    fn pipelines_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<super::PublishPipeline>();
        send_sync::<super::PlayPipeline>();
        send_sync::<super::EncodedFrame>();
        send_sync::<super::MediaError>();
        send_sync::<super::Speaker>();
        send_sync::<super::SpeakerInput>();
        send_sync::<super::AudioFeed>();
    }
}

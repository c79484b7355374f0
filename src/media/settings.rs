//! Media settings: the `[video]`, `[audio]` and `[display]` sections of the device config
//! (SPEC.md) as the media module needs them. The config loader maps its TOML onto these; the
//! string forms (`v4l2:/dev/video0`, `alsa:hw:1`) parse with `FromStr` so error messages can
//! quote what the user wrote.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::MediaError;

/// `[video] source`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoSource {
    /// The cameras `crate::devices::choose` ranks, tried in order (one that delivers no frame
    /// within [`crate::media::FIRST_FRAME_TIMEOUT`] is reported and the next tried), else the
    /// test pattern with a warning.
    #[default]
    Auto,
    /// `videotestsrc`, live, with the frame stamp drawn in.
    Test,
    /// `v4l2src device=…`.
    V4l2(PathBuf),
    /// `libcamerasrc`.
    Libcamera,
}

/// `[video] encoder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// `v4l2h264enc` where it exists and opens, else `x264enc`.
    #[default]
    Auto,
    V4l2h264enc,
    X264enc,
}

/// `[audio] capture`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioCapture {
    /// The microphone `crate::devices::choose` picks (USB first), else ALSA `default`, else the
    /// test tone with a warning.
    #[default]
    Auto,
    /// `audiotestsrc`, live, a sine at [`AudioSettings::test_tone_hz`].
    Test,
    /// No audio is published.
    None,
    /// `alsasrc device=<pcm>`, in its own pipeline that is reopened every second while the
    /// device is missing (silence is published meanwhile).
    Alsa(String),
    /// PCM pushed by the program through an [`crate::media::AudioFeed`] (tests; not a config
    /// value), with the same hot-plug handling as `Alsa`.
    Feed(crate::media::AudioFeed),
}

/// `[audio] playback`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AudioPlayback {
    /// `autoaudiosink`.
    #[default]
    Auto,
    /// Decode and count, play nothing (an appsink that also measures the tone).
    None,
    /// `alsasink device=<pcm>`.
    Alsa(String),
}

/// `[display] sink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplaySink {
    /// `kms` when there is no desktop (`$DISPLAY` and `$WAYLAND_DISPLAY` unset), else `window`.
    #[default]
    Auto,
    Kms,
    Window,
    /// Decode, count and read the frame stamp; show nothing.
    None,
}

impl DisplaySink {
    /// Resolves `auto` given whether a desktop session is present.
    pub fn resolve(self, has_desktop: bool) -> DisplaySink {
        match self {
            DisplaySink::Auto if has_desktop => DisplaySink::Window,
            DisplaySink::Auto => DisplaySink::Kms,
            other => other,
        }
    }

    /// Whether this process runs under a desktop session.
    pub fn desktop_present() -> bool {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    }
}

fn bad(field: &'static str, value: &str, expected: &'static str) -> MediaError {
    MediaError::Setting {
        field,
        value: value.to_owned(),
        expected,
    }
}

impl FromStr for VideoSource {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const EXPECTED: &str = "auto | test | v4l2:/dev/videoN | libcamera";
        match s {
            "auto" => Ok(Self::Auto),
            "test" => Ok(Self::Test),
            "libcamera" => Ok(Self::Libcamera),
            _ => match s.strip_prefix("v4l2:") {
                Some(path) if path.starts_with('/') => Ok(Self::V4l2(PathBuf::from(path))),
                _ => Err(bad("video.source", s, EXPECTED)),
            },
        }
    }
}

impl FromStr for EncoderChoice {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "v4l2h264enc" => Ok(Self::V4l2h264enc),
            "x264enc" => Ok(Self::X264enc),
            _ => Err(bad("video.encoder", s, "auto | v4l2h264enc | x264enc")),
        }
    }
}

impl FromStr for AudioCapture {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "test" => Ok(Self::Test),
            "none" => Ok(Self::None),
            _ => match s.strip_prefix("alsa:") {
                Some(pcm) if !pcm.is_empty() => Ok(Self::Alsa(pcm.to_owned())),
                _ => Err(bad("audio.capture", s, "auto | test | none | alsa:<pcm>")),
            },
        }
    }
}

impl FromStr for AudioPlayback {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::None),
            _ => match s.strip_prefix("alsa:") {
                Some(pcm) if !pcm.is_empty() => Ok(Self::Alsa(pcm.to_owned())),
                _ => Err(bad("audio.playback", s, "auto | none | alsa:<pcm>")),
            },
        }
    }
}

impl FromStr for DisplaySink {
    type Err = MediaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "kms" => Ok(Self::Kms),
            "window" => Ok(Self::Window),
            "none" => Ok(Self::None),
            _ => Err(bad("display.sink", s, "auto | kms | window | none")),
        }
    }
}

/// `[video]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoSettings {
    pub source: VideoSource,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub encoder: EncoderChoice,
    /// Ceiling for [`crate::media::PublishPipeline::set_bitrate_kbps`]; also the start bitrate.
    pub max_bitrate_kbps: u32,
}

impl Default for VideoSettings {
    fn default() -> Self {
        Self {
            source: VideoSource::Auto,
            width: 1280,
            height: 720,
            fps: 30,
            encoder: EncoderChoice::Auto,
            max_bitrate_kbps: 2500,
        }
    }
}

impl VideoSettings {
    /// What the device chooser (`crate::devices`) is asked for.
    pub fn wanted(&self) -> crate::devices::Wanted {
        use crate::devices::{EncoderRequest, VideoRequest};
        crate::devices::Wanted {
            width: self.width,
            height: self.height,
            fps: self.fps,
            video: match &self.source {
                VideoSource::Auto => VideoRequest::Auto,
                VideoSource::Test => VideoRequest::Test,
                VideoSource::V4l2(p) => VideoRequest::V4l2(p.to_string_lossy().into_owned()),
                VideoSource::Libcamera => VideoRequest::Libcamera,
            },
            encoder: match self.encoder {
                EncoderChoice::Auto => EncoderRequest::Auto,
                EncoderChoice::V4l2h264enc => EncoderRequest::V4l2h264enc,
                EncoderChoice::X264enc => EncoderRequest::X264enc,
            },
        }
    }
}

/// The lowest video bitrate the encoder is ever set to.
pub const MIN_BITRATE_KBPS: u32 = 150;

impl VideoSettings {
    /// Checks the numbers: sizes even and within 16..=4096, fps 1..=120, bitrate at least the floor.
    pub fn validate(&self) -> Result<(), MediaError> {
        let dim = |field: &'static str, v: u32| {
            if (16..=4096).contains(&v) && v.is_multiple_of(2) {
                Ok(())
            } else {
                Err(bad(
                    field,
                    &v.to_string(),
                    "an even number of pixels from 16 to 4096",
                ))
            }
        };
        dim("video.width", self.width)?;
        dim("video.height", self.height)?;
        if !(1..=120).contains(&self.fps) {
            return Err(bad("video.fps", &self.fps.to_string(), "1 to 120"));
        }
        if self.max_bitrate_kbps < MIN_BITRATE_KBPS {
            return Err(bad(
                "video.max_bitrate_kbps",
                &self.max_bitrate_kbps.to_string(),
                "at least 150",
            ));
        }
        Ok(())
    }
}

/// `[audio]` (the capture side).
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSettings {
    pub capture: AudioCapture,
    /// Frequency of the `test` tone.
    pub test_tone_hz: f64,
    /// Opus bitrate.
    pub bitrate_bps: u32,
    /// Cancel the speaker's echo (`webrtcdsp echo-cancel=true delay-agnostic=true`); needs
    /// [`echo_probe`](Self::echo_probe).
    pub echo_cancel: bool,
    /// `webrtcdsp noise-suppression`.
    pub noise_suppression: bool,
    /// `webrtcdsp gain-control` (automatic digital gain).
    pub gain_control: bool,
    /// The name of the running [`crate::media::Speaker`]'s echo probe (`Speaker::probe_name`).
    pub echo_probe: Option<String>,
}

impl Default for AudioSettings {
    /// No voice processing: the media layer alone has no speaker to cancel; the appliance turns
    /// it on from `[audio]` (whose defaults are on).
    fn default() -> Self {
        Self {
            capture: AudioCapture::Auto,
            test_tone_hz: 440.0,
            bitrate_bps: 32_000,
            echo_cancel: false,
            noise_suppression: false,
            gain_control: false,
            echo_probe: None,
        }
    }
}

impl AudioSettings {
    /// Whether the microphone path gets a `webrtcdsp`.
    pub fn voice_processing(&self) -> bool {
        self.echo_cancel || self.noise_suppression || self.gain_control
    }
}

/// What a [`crate::media::PublishPipeline`] is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishSettings {
    pub video: VideoSettings,
    pub audio: AudioSettings,
    /// Capacity of the encoded-frame channel; a frame that finds it full is dropped (counted,
    /// and the next video frame is forced to be a keyframe).
    pub channel_capacity: usize,
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self {
            video: VideoSettings::default(),
            audio: AudioSettings::default(),
            channel_capacity: 64,
        }
    }
}

/// What a [`crate::media::PlayPipeline`] is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaySettings {
    pub display: DisplaySink,
    pub playback: AudioPlayback,
    /// Jitter allowance: how long after its arrival the first frame plays (see `playout`).
    pub playout_delay: Duration,
}

impl Default for PlaySettings {
    fn default() -> Self {
        Self {
            display: DisplaySink::Auto,
            playback: AudioPlayback::Auto,
            playout_delay: Duration::from_millis(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_spec_strings() {
        assert_eq!(
            "v4l2:/dev/video2".parse::<VideoSource>().unwrap(),
            VideoSource::V4l2("/dev/video2".into())
        );
        assert_eq!(
            "alsa:hw:1,0".parse::<AudioCapture>().unwrap(),
            AudioCapture::Alsa("hw:1,0".into())
        );
        assert_eq!(
            "none".parse::<AudioPlayback>().unwrap(),
            AudioPlayback::None
        );
        assert_eq!(
            "x264enc".parse::<EncoderChoice>().unwrap(),
            EncoderChoice::X264enc
        );
        assert_eq!("kms".parse::<DisplaySink>().unwrap(), DisplaySink::Kms);
    }

    #[test]
    fn bad_strings_name_the_field_and_the_choices() {
        let err = "v4l2:video0"
            .parse::<VideoSource>()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("video.source")
                && err.contains("v4l2:video0")
                && err.contains("libcamera"),
            "{err}"
        );
        assert!("alsa:".parse::<AudioCapture>().is_err());
        assert!("hdmi".parse::<DisplaySink>().is_err());
    }

    #[test]
    fn auto_display_follows_the_desktop() {
        assert_eq!(DisplaySink::Auto.resolve(true), DisplaySink::Window);
        assert_eq!(DisplaySink::Auto.resolve(false), DisplaySink::Kms);
        assert_eq!(DisplaySink::None.resolve(true), DisplaySink::None);
    }

    #[test]
    fn validates_numbers() {
        assert!(VideoSettings::default().validate().is_ok());
        let odd = VideoSettings {
            width: 641,
            ..VideoSettings::default()
        };
        assert!(
            odd.validate()
                .unwrap_err()
                .to_string()
                .contains("video.width")
        );
        let slow = VideoSettings {
            max_bitrate_kbps: 100,
            ..VideoSettings::default()
        };
        assert!(slow.validate().is_err());
    }
}

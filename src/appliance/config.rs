//! The device's config file (TOML; SPEC.md's contract). Unknown keys are an error naming the key
//! and line; every key is documented, with its default, in `config/roomcam.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the device looks for its config when `--config` is not given, in order.
pub const DEFAULT_PATHS: &[&str] = &["/etc/roomcam/roomcam.toml", "/boot/firmware/roomcam.toml"];

/// Why a device config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no config file: give --config FILE, or create {}", DEFAULT_PATHS.join(" or "))]
    NotFound,
    #[error("{path}: {message}\n(every key is documented in config/roomcam.example.toml)")]
    Parse { path: PathBuf, message: String },
    #[error("{path}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
}

fn d_true() -> bool {
    true
}

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    pub server: ServerSection,
    pub identity: IdentitySection,
    pub room: RoomSection,
    #[serde(default)]
    pub video: VideoSection,
    #[serde(default)]
    pub audio: AudioSection,
    #[serde(default)]
    pub display: DisplaySection,
    pub gpio: Option<GpioSection>,
    #[serde(default)]
    pub status: StatusSection,
    #[serde(default)]
    pub network: NetworkSection,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `ws://host:port/ws` or `wss://…`.
    pub url: String,
    /// Trust this CA for the server certificate (else the system roots).
    pub ca_file: Option<PathBuf>,
    /// Send credentials over plain `ws://` to a non-loopback host.
    #[serde(default)]
    pub allow_insecure: bool,
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySection {
    pub app_id: u32,
    pub user_id: String,
    pub user_name: Option<String>,
    pub token: Option<String>,
    /// A file holding the token (re-read when it changes).
    pub token_file: Option<PathBuf>,
    /// Development only.
    pub app_sign: Option<String>,
}

/// `[room]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSection {
    pub id: String,
    /// Publish and play at start, without a button press.
    #[serde(default = "d_true")]
    pub auto_join: bool,
    /// When not in a call, stay logged in without publishing.
    #[serde(default = "d_true")]
    pub presence: bool,
    /// Default: `<user_id>-main`.
    pub stream_id: Option<String>,
}

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoSource {
    Auto,
    Test,
    V4l2(PathBuf),
    Libcamera,
}

/// Which H.264 encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderChoice {
    Auto,
    V4l2h264enc,
    X264enc,
}

/// `[video]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoSection {
    /// `auto | test | v4l2:/dev/videoN | libcamera`
    pub source: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub encoder: EncoderChoice,
    pub max_bitrate_kbps: u32,
}

impl Default for VideoSection {
    fn default() -> Self {
        VideoSection {
            source: "auto".into(),
            width: 1280,
            height: 720,
            fps: 30,
            encoder: EncoderChoice::Auto,
            max_bitrate_kbps: 2500,
        }
    }
}

impl VideoSection {
    /// The parsed `source`.
    pub fn source(&self) -> Result<VideoSource, String> {
        parse_video_source(&self.source)
    }
}

/// Parses `[video] source`.
pub fn parse_video_source(s: &str) -> Result<VideoSource, String> {
    match s {
        "auto" => Ok(VideoSource::Auto),
        "test" => Ok(VideoSource::Test),
        "libcamera" => Ok(VideoSource::Libcamera),
        _ => match s.strip_prefix("v4l2:") {
            Some(p) if p.starts_with("/dev/") => Ok(VideoSource::V4l2(PathBuf::from(p))),
            _ => Err(format!(
                "source = {s:?}: use \"auto\", \"test\", \"v4l2:/dev/videoN\" or \"libcamera\""
            )),
        },
    }
}

/// An audio endpoint: `auto`, `test` (capture only), `none`, or an ALSA PCM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioEndpoint {
    Auto,
    Test,
    None,
    Alsa(String),
}

/// Parses `[audio] capture` / `playback`.
pub fn parse_audio(s: &str, allow_test: bool) -> Result<AudioEndpoint, String> {
    match s {
        "auto" => Ok(AudioEndpoint::Auto),
        "none" => Ok(AudioEndpoint::None),
        "test" if allow_test => Ok(AudioEndpoint::Test),
        _ => match s.strip_prefix("alsa:") {
            Some(p) if !p.is_empty() => Ok(AudioEndpoint::Alsa(p.to_string())),
            _ => Err(format!(
                "{s:?}: use \"auto\", {}\"none\" or \"alsa:<pcm>\" (e.g. \"alsa:hw:1,0\")",
                if allow_test { "\"test\", " } else { "" }
            )),
        },
    }
}

/// `[audio]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AudioSection {
    pub capture: String,
    pub playback: String,
    /// Cancel the speaker's echo in the microphone signal (`webrtcdsp` against the speaker's
    /// echo probe).
    pub echo_cancel: bool,
    /// Suppress steady background noise (fans, hum) in the microphone signal.
    pub noise_suppression: bool,
    /// Automatic digital gain on the microphone signal.
    pub gain_control: bool,
}

impl Default for AudioSection {
    fn default() -> Self {
        AudioSection {
            capture: "auto".into(),
            playback: "auto".into(),
            echo_cancel: true,
            noise_suppression: true,
            gain_control: true,
        }
    }
}

/// What shows the remote video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkChoice {
    Auto,
    Kms,
    Window,
    None,
}

/// `[display]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DisplaySection {
    pub sink: SinkChoice,
    /// DRM connector name, e.g. "HDMI-A-1", or "auto".
    pub connector: String,
    /// "auto" or WIDTHxHEIGHT[@HZ].
    pub mode: String,
    /// Local picture-in-picture.
    pub preview: bool,
}

impl Default for DisplaySection {
    fn default() -> Self {
        DisplaySection {
            sink: SinkChoice::Auto,
            connector: "auto".into(),
            mode: "auto".into(),
            preview: false,
        }
    }
}

/// A GPIO line: its offset on the chip, or its name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Offset(u32),
    Name(String),
}

/// `[gpio]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioSection {
    #[serde(default = "d_chip")]
    pub chip: PathBuf,
    pub call_button: Option<Line>,
    #[serde(default = "d_true")]
    pub active_low: bool,
    #[serde(default = "d_bias")]
    pub bias: String,
    #[serde(default = "d_long")]
    pub long_press_s: f64,
    pub mute_button: Option<Line>,
    pub camera_button: Option<Line>,
    pub volume_up: Option<Line>,
    pub volume_down: Option<Line>,
    pub status_led: Option<Line>,
    pub camera_led: Option<Line>,
}

fn d_chip() -> PathBuf {
    PathBuf::from("/dev/gpiochip0")
}
fn d_bias() -> String {
    "pull-up".into()
}
fn d_long() -> f64 {
    5.0
}

/// `[status]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusSection {
    /// Where `GET /status` answers (off when absent).
    pub listen: Option<SocketAddr>,
}

/// `[network]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    /// Seconds UDP media gets to connect before the device falls back to ICE-TCP (0 = never).
    pub ice_tcp_fallback_secs: f64,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            ice_tcp_fallback_secs: crate::engine::DEFAULT_TCP_FALLBACK_AFTER.as_secs_f64(),
        }
    }
}

impl NetworkSection {
    /// The engine's `tcp_fallback_after`.
    pub fn tcp_fallback_after(&self) -> Option<std::time::Duration> {
        (self.ice_tcp_fallback_secs > 0.0)
            .then(|| std::time::Duration::try_from_secs_f64(self.ice_tcp_fallback_secs).ok())
            .flatten()
    }
}

/// How the device authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Token(String),
    TokenFile(PathBuf),
    AppSign(String),
}

impl DeviceConfig {
    /// Loads `path`, or the first default path that exists.
    pub fn load(path: Option<&Path>) -> Result<(DeviceConfig, PathBuf), ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => DEFAULT_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or(ConfigError::NotFound)?,
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Ok((Self::parse(&text, &path)?, path))
    }

    /// Parses and checks config text; `path` is for messages.
    pub fn parse(text: &str, path: &Path) -> Result<DeviceConfig, ConfigError> {
        let cfg: DeviceConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate()
            .map_err(|(section, key, message)| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: line_of(text, section, key),
                message: format!("[{section}] {key}: {message}"),
            })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (&'static str, &'static str, String)> {
        let url = &self.server.url;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err((
                "server",
                "url",
                format!("{url:?} must start with ws:// or wss://"),
            ));
        }
        crate::protocol::ids::validate_user_id(&self.identity.user_id)
            .map_err(|c| ("identity", "user_id", c.description().to_string()))?;
        if let Some(n) = &self.identity.user_name {
            crate::protocol::ids::validate_user_name(n)
                .map_err(|c| ("identity", "user_name", c.description().to_string()))?;
        }
        let creds = [
            self.identity.token.is_some(),
            self.identity.token_file.is_some(),
            self.identity.app_sign.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if creds != 1 {
            return Err((
                "identity",
                "token",
                "give exactly one of token, token_file and app_sign".into(),
            ));
        }
        if let Some(s) = &self.identity.app_sign
            && !crate::auth::appsign::valid_app_sign(s)
        {
            return Err((
                "identity",
                "app_sign",
                "must be 64 hexadecimal digits".into(),
            ));
        }
        crate::protocol::ids::validate_room_id(&self.room.id)
            .map_err(|c| ("room", "id", c.description().to_string()))?;
        crate::protocol::ids::validate_stream_id(&self.stream_id())
            .map_err(|c| ("room", "stream_id", c.description().to_string()))?;
        self.video.source().map_err(|m| ("video", "source", m))?;
        let v = &self.video;
        if !(16..=4096).contains(&v.width) || !(16..=4096).contains(&v.height) {
            return Err((
                "video",
                "width",
                "width and height must be 16 to 4096".into(),
            ));
        }
        if !v.width.is_multiple_of(2) || !v.height.is_multiple_of(2) {
            return Err((
                "video",
                "width",
                "width and height must be even (H.264 4:2:0)".into(),
            ));
        }
        if !(1..=60).contains(&v.fps) {
            return Err(("video", "fps", "must be 1 to 60".into()));
        }
        if !(100..=20_000).contains(&v.max_bitrate_kbps) {
            return Err(("video", "max_bitrate_kbps", "must be 100 to 20000".into()));
        }
        parse_audio(&self.audio.capture, true).map_err(|m| ("audio", "capture", m))?;
        parse_audio(&self.audio.playback, false).map_err(|m| ("audio", "playback", m))?;
        let mode = &self.display.mode;
        if mode != "auto" && parse_mode(mode).is_none() {
            return Err((
                "display",
                "mode",
                format!("{mode:?}: use \"auto\" or WIDTHxHEIGHT[@HZ], e.g. \"1920x1080@60\""),
            ));
        }
        if let Some(g) = &self.gpio {
            if !["pull-up", "pull-down", "disabled", "as-is"].contains(&g.bias.as_str()) {
                return Err((
                    "gpio",
                    "bias",
                    format!("{:?}: use pull-up, pull-down, disabled or as-is", g.bias),
                ));
            }
            if !(0.5..=60.0).contains(&g.long_press_s) {
                return Err(("gpio", "long_press_s", "must be 0.5 to 60 seconds".into()));
            }
        }
        let f = self.network.ice_tcp_fallback_secs;
        if !(f == 0.0 || (0.5..=10.0).contains(&f)) {
            return Err((
                "network",
                "ice_tcp_fallback_secs",
                "must be 0 (never) or 0.5 to 10 seconds (the media connect timeout is 15 s)".into(),
            ));
        }
        Ok(())
    }

    /// The stream this device publishes.
    pub fn stream_id(&self) -> String {
        self.room
            .stream_id
            .clone()
            .unwrap_or_else(|| format!("{}-main", self.identity.user_id))
    }

    /// The display name.
    pub fn user_name(&self) -> String {
        self.identity
            .user_name
            .clone()
            .unwrap_or_else(|| self.identity.user_id.clone())
    }

    /// How this device authenticates.
    pub fn auth(&self) -> Auth {
        if let Some(t) = &self.identity.token {
            Auth::Token(t.clone())
        } else if let Some(p) = &self.identity.token_file {
            Auth::TokenFile(p.clone())
        } else {
            Auth::AppSign(self.identity.app_sign.clone().unwrap_or_default())
        }
    }
}

/// Parses `WIDTHxHEIGHT[@HZ]`.
pub fn parse_mode(s: &str) -> Option<(u32, u32, Option<u32>)> {
    let (size, hz) = match s.split_once('@') {
        Some((a, b)) => (a, Some(b.parse().ok()?)),
        None => (s, None),
    };
    let (w, h) = size.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?, hz))
}

/// The line of `key` inside `[section]` in TOML text (1-based), for messages.
fn line_of(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut in_section = false;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t.trim_matches(|c| c == '[' || c == ']').trim() == section;
            continue;
        }
        if in_section
            && let Some((k, _)) = t.split_once('=')
            && k.trim() == key
        {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const GOOD: &str = r#"
[server]
url = "ws://127.0.0.1:8080/ws"
[identity]
app_id = 1234567890
user_id = "pi-livingroom"
token = "04abc"
[room]
id = "room1"
"#;

    fn parse(t: &str) -> Result<DeviceConfig, ConfigError> {
        DeviceConfig::parse(t, Path::new("dev.toml"))
    }

    #[test]
    fn defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.stream_id(), "pi-livingroom-main");
        assert_eq!(c.video.width, 1280);
        assert!(c.room.auto_join && c.room.presence);
        assert_eq!(c.video.source(), Ok(VideoSource::Auto));
        assert_eq!(c.auth(), Auth::Token("04abc".into()));
        assert!(c.gpio.is_none());
        assert!(c.audio.echo_cancel && c.audio.noise_suppression && c.audio.gain_control);
    }

    #[test]
    fn a_mistyped_audio_switch_names_its_line() {
        let e = parse(&format!("{GOOD}[audio]\ngain_control = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gain_control") && e.contains("line 11"), "{e}");
    }

    #[test]
    fn ice_tcp_fallback_key() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.network.tcp_fallback_after(),
            Some(std::time::Duration::from_secs(3))
        );
        let c = parse(&format!("{GOOD}[network]\nice_tcp_fallback_secs = 0\n")).unwrap();
        assert_eq!(c.network.tcp_fallback_after(), None);
        let c = parse(&format!("{GOOD}[network]\nice_tcp_fallback_secs = 1.5\n")).unwrap();
        assert_eq!(
            c.network.tcp_fallback_after(),
            Some(std::time::Duration::from_millis(1500))
        );
        for bad in ["-1", "0.1", "30", "nan"] {
            let e = parse(&format!("{GOOD}[network]\nice_tcp_fallback_secs = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("ice_tcp_fallback_secs"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let c = parse(include_str!("../../config/roomcam.example.toml")).unwrap();
        assert_eq!(c.room.id, "room1");
        let g = c.gpio.unwrap();
        assert_eq!(g.call_button, Some(Line::Offset(17)));
        assert_eq!(g.mute_button, Some(Line::Name("GPIO22".into())));
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse(&format!("{GOOD}colour = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("colour") && e.contains("line 10") && e.contains("dev.toml"),
            "{e}"
        );
    }

    #[test]
    fn each_kind_of_mistake_is_named() {
        for (change, needle) in [
            (("ws://127.0.0.1:8080/ws", "http://x"), "[server] url"),
            (
                ("token = \"04abc\"", "token = \"04abc\"\napp_sign = \"00\""),
                "exactly one",
            ),
            (("token = \"04abc\"", "app_sign = \"zz\""), "64 hexadecimal"),
            (("id = \"room1\"", "id = \"room 1\""), "[room] id"),
            (
                ("user_id = \"pi-livingroom\"", "user_id = \"\""),
                "[identity] user_id",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[video]\nsource = \"usb\"",
                ),
                "v4l2:/dev/videoN",
            ),
            (
                ("id = \"room1\"", "id = \"room1\"\n[video]\nwidth = 641"),
                "even",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[video]\nencoder = \"nvenc\"",
                ),
                "nvenc",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[audio]\ncapture = \"mic\"",
                ),
                "alsa:<pcm>",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[audio]\nplayback = \"test\"",
                ),
                "[audio] playback",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[audio]\nnoise_suppression = \"yes\"",
                ),
                "noise_suppression",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[audio]\ngain_contrl = false",
                ),
                "gain_contrl",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[display]\nmode = \"big\"",
                ),
                "WIDTHxHEIGHT",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[display]\nsink = \"hdmi\"",
                ),
                "hdmi",
            ),
            (
                ("id = \"room1\"", "id = \"room1\"\n[gpio]\nbias = \"up\""),
                "pull-up",
            ),
            (
                (
                    "id = \"room1\"",
                    "id = \"room1\"\n[status]\nlisten = \"nowhere\"",
                ),
                "listen",
            ),
            (("app_id = 1234567890", "app_id = \"x\""), "app_id"),
        ] {
            let text = GOOD.replace(change.0, change.1);
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{change:?}: {e}");
            assert!(e.contains("dev.toml"), "{e}");
        }
        let e = parse(&GOOD.replace("id = \"room1\"", "id = \"room 1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 9"), "{e}");
    }
}

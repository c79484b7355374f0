//! The device listing: what discovery found on a machine, as plain data (serde). Adapters fill
//! it from the real machine (`discover`); tests load recorded ones from
//! `tests/fixtures/devices/*.json`. The chooser reads nothing else.

use serde::{Deserialize, Serialize};

/// Everything discovery found. Missing sections mean "nothing found".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Where the listing came from ("this machine", "Raspberry Pi 4 Model B Rev 1.4", ...).
    #[serde(default)]
    pub machine: String,
    /// CPU cores (chooses x264enc's speed preset).
    #[serde(default = "one")]
    pub cores: u32,
    #[serde(default)]
    pub v4l2: Vec<V4l2Node>,
    #[serde(default)]
    pub libcamera: Vec<LibcameraCamera>,
    #[serde(default)]
    pub alsa: Vec<AlsaCard>,
    #[serde(default)]
    pub gst: GstRegistry,
    #[serde(default)]
    pub drm: Vec<DrmConnector>,
    /// Discovery problems that are not tied to one entry (a missing /sys, a failed registry).
    #[serde(default)]
    pub errors: Vec<String>,
}

fn one() -> u32 {
    1
}

/// One `/dev/videoN` node (`v4l2-ctl --list-devices` + `--all` + `--list-formats-ext`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Node {
    pub path: String,
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub card: String,
    #[serde(default)]
    pub bus_info: String,
    /// Device capabilities: `video_capture`, `video_capture_mplane`, `video_output`,
    /// `video_output_mplane`, `video_m2m`, `video_m2m_mplane`, `meta_capture`, `meta_output`,
    /// `streaming`, `io_mc`.
    #[serde(default)]
    pub caps: Vec<String>,
    /// Formats of the capture queue (for an M2M node: what comes out).
    #[serde(default)]
    pub formats: Vec<V4l2Format>,
    /// Formats of the output queue of an M2M node (what goes in).
    #[serde(default)]
    pub output_formats: Vec<V4l2Format>,
    /// The media-controller entity this node is (`media-ctl -p`), when there is one.
    #[serde(default)]
    pub media: Option<MediaEntity>,
    /// Why the node could not be queried (it vanished, permission, ioctl error).
    #[serde(default)]
    pub error: Option<String>,
}

impl V4l2Node {
    pub fn has_cap(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }
}

/// A media-controller entity (`/dev/mediaN`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaEntity {
    /// `/dev/media0`
    #[serde(default)]
    pub device: String,
    /// The media device's model (`unicam`, `bcm2835-isp`, `rp1-cfe`, `pispbe`).
    #[serde(default)]
    pub model: String,
    /// The entity's name (`unicam-image`, `bcm2835-isp0-output0`, `rp1-cfe-csi2_ch0`).
    #[serde(default)]
    pub entity: String,
    /// Sensor subdevices linked to it (`imx708`), for CSI receivers.
    #[serde(default)]
    pub sensors: Vec<String>,
}

/// One pixel format with its frame sizes and rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct V4l2Format {
    /// FourCC as v4l2-ctl prints it: `YUYV`, `MJPG`, `H264`, `NV12`, `pRAA`, `RG10`.
    pub fourcc: String,
    #[serde(default)]
    pub description: String,
    /// Discrete sizes with their rates; empty with `stepwise` set for a range.
    #[serde(default)]
    pub sizes: Vec<FrameSize>,
    #[serde(default)]
    pub stepwise: Option<Stepwise>,
}

/// A discrete frame size and the frame rates offered at it (`[num, den]`, e.g. `[30, 1]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameSize {
    pub width: u32,
    pub height: u32,
    #[serde(default)]
    pub rates: Vec<[u32; 2]>,
}

/// A size range (`Size: Stepwise 32x32 - 1920x1920 with step 2/2`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    #[serde(default = "one")]
    pub step_width: u32,
    #[serde(default = "one")]
    pub step_height: u32,
    /// The highest rate offered (none listed: any).
    #[serde(default)]
    pub max_fps: Option<u32>,
}

/// A camera libcamera sees (`rpicam-hello --list-cameras`, `cam -l`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LibcameraCamera {
    /// libcamera's id: `/base/soc/i2c0mux/i2c@1/imx708@1a`.
    pub id: String,
    /// Sensor model: `imx708`.
    #[serde(default)]
    pub model: String,
    /// Output sizes it offers (after the ISP).
    #[serde(default)]
    pub sizes: Vec<FrameSize>,
}

/// One ALSA card (`aplay -l` / `arecord -l`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsaCard {
    pub index: u32,
    /// Card id (stable across boots): `vc4hdmi0`, `Headphones`, `Device`.
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub long_name: String,
    /// Kernel driver when known (`snd-usb-audio`, `snd_bcm2835`, `vc4-hdmi`).
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub pcms: Vec<AlsaPcm>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One PCM device of a card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsaPcm {
    pub device: u32,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub capture: bool,
    #[serde(default)]
    pub playback: bool,
}

/// The GStreamer elements that matter here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GstRegistry {
    /// Element factory names present (`v4l2src`, `libcamerasrc`, `jpegdec`, `x264enc`, ...).
    #[serde(default)]
    pub elements: Vec<String>,
    /// Encoders and decoders for video codecs.
    #[serde(default)]
    pub codecs: Vec<GstCodec>,
    #[serde(default)]
    pub error: Option<String>,
}

impl GstRegistry {
    pub fn has(&self, element: &str) -> bool {
        self.elements.iter().any(|e| e == element)
            || self.codecs.iter().any(|c| c.element == element)
    }
}

/// A GStreamer video encoder or decoder.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GstCodec {
    pub element: String,
    /// `encoder` or `decoder`.
    pub role: String,
    /// `h264`, `h265`, `jpeg`, `vp8`, ...
    pub codec: String,
    /// The factory's klass says `Hardware`.
    #[serde(default)]
    pub hardware: bool,
    #[serde(default)]
    pub rank: u32,
}

/// A DRM connector (`/sys/class/drm/card1-HDMI-A-1/{status,modes}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrmConnector {
    /// `card1`
    pub card: String,
    /// `HDMI-A-1`
    pub name: String,
    /// `connected`, `disconnected`, `unknown`.
    pub status: String,
    /// `1920x1080`, ... (first = preferred).
    #[serde(default)]
    pub modes: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
}

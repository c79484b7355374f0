//! The chooser: a [`Listing`] and what the config asks for in, the devices `auto` uses out, with
//! every entry of the listing annotated "would pick" or why not. Pure: no I/O, no GStreamer.

use serde::{Deserialize, Serialize};

use super::listing::{AlsaCard, AlsaPcm, DrmConnector, FrameSize, Listing, V4l2Format, V4l2Node};

/// `[video] source` as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VideoRequest {
    #[default]
    Auto,
    Test,
    V4l2(String),
    Libcamera,
}

/// `[video] encoder` as the chooser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderRequest {
    #[default]
    Auto,
    V4l2h264enc,
    X264enc,
}

/// What the config asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub video: VideoRequest,
    pub encoder: EncoderRequest,
}

impl Default for Wanted {
    fn default() -> Self {
        Self {
            width: 1280,
            height: 720,
            fps: 30,
            video: VideoRequest::Auto,
            encoder: EncoderRequest::Auto,
        }
    }
}

/// How to capture video: one candidate of `auto`, or an explicit source resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VideoPlan {
    /// `v4l2src device=… ! <fourcc caps> [! decoder]`.
    V4l2 {
        device: String,
        driver: String,
        card: String,
        /// The V4L2 FourCC captured (`YUYV`, `MJPG`).
        fourcc: String,
        width: u32,
        height: u32,
        /// Frame rate `[num, den]`.
        fps: [u32; 2],
        /// The JPEG decoder for MJPEG capture.
        decoder: Option<String>,
    },
    /// `libcamerasrc camera-name=…` (CSI cameras: the ISP makes any size).
    Libcamera {
        id: String,
        model: String,
        width: u32,
        height: u32,
        fps: u32,
    },
    /// The test pattern.
    Test,
}

impl VideoPlan {
    /// The source as a GStreamer bin description (`gst::parse::bin_from_description`), ending
    /// in raw video that `videoconvert ! videoscale` take to the encoder's I420 WxH@fps.
    pub fn gst_description(&self) -> String {
        match self {
            VideoPlan::V4l2 {
                device,
                fourcc,
                width,
                height,
                fps,
                decoder,
                ..
            } => {
                let rate = format!("{}/{}", fps[0], fps[1]);
                match (gst_raw_format(fourcc), decoder) {
                    // A caps filter as the last link of a description must be a named
                    // `capsfilter`: bare caps there parse as an element ("no element video").
                    (Some(format), _) => format!(
                        "v4l2src device=\"{device}\" ! capsfilter caps=\"video/x-raw,format={format},width={width},height={height},framerate={rate}\""
                    ),
                    (None, Some(dec)) => format!(
                        "v4l2src device=\"{device}\" ! image/jpeg,width={width},height={height},framerate={rate} ! {dec}"
                    ),
                    (None, None) => format!("v4l2src device=\"{device}\""),
                }
            }
            VideoPlan::Libcamera {
                id,
                width,
                height,
                fps,
                ..
            } => format!(
                "libcamerasrc camera-name=\"{id}\" ! capsfilter caps=\"video/x-raw,width={width},height={height},framerate={fps}/1\""
            ),
            VideoPlan::Test => "videotestsrc is-live=true pattern=smpte".into(),
        }
    }

    /// Short human form: `/dev/video0 MJPG 1280x720@30 + jpegdec`.
    pub fn label(&self) -> String {
        match self {
            VideoPlan::V4l2 {
                device,
                fourcc,
                width,
                height,
                fps,
                decoder,
                ..
            } => format!(
                "{device} {fourcc} {width}x{height}@{}{}",
                fmt_rate(*fps),
                decoder
                    .as_deref()
                    .map(|d| format!(" + {d}"))
                    .unwrap_or_default()
            ),
            VideoPlan::Libcamera {
                id,
                width,
                height,
                fps,
                ..
            } => format!("libcamera {id} {width}x{height}@{fps}"),
            VideoPlan::Test => "test pattern".into(),
        }
    }
}

/// The H.264 encoder to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "element")]
pub enum EncoderPlan {
    /// The V4L2 M2M encoder (bcm2835-codec): raw I420 in, `level` in the output caps.
    #[serde(rename = "v4l2h264enc")]
    V4l2h264enc {
        device: Option<String>,
        input_format: String,
        level: String,
    },
    /// Software: `tune=zerolatency`, the preset for this many cores.
    #[serde(rename = "x264enc")]
    X264enc { speed_preset: String, threads: u32 },
}

impl EncoderPlan {
    pub fn element(&self) -> &'static str {
        match self {
            EncoderPlan::V4l2h264enc { .. } => "v4l2h264enc",
            EncoderPlan::X264enc { .. } => "x264enc",
        }
    }
}

/// One entry of the listing with what `auto` makes of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `camera`, `microphone`, `speaker`, `encoder`, `decoder`, `display`.
    pub kind: String,
    /// `/dev/video0`, `libcamera:/base/…`, `plughw:CARD=Device,DEV=0`, `x264enc`, `HDMI-A-1`.
    pub id: String,
    /// Driver, card, bus, mode: what a person needs to recognise it.
    pub detail: String,
    /// `auto` would use this one.
    pub pick: bool,
    /// Place in `auto`'s ordered candidates (1 = first), for the ones `auto` may use.
    pub rank: Option<usize>,
    /// Why `auto` would not use it.
    pub why_not: Option<String>,
}

/// What `auto` chooses, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// Video sources to try in order (the first that delivers a frame wins); empty: test pattern.
    pub video: Vec<VideoPlan>,
    pub encoder: EncoderPlan,
    /// `[audio] capture = "auto"`: the ALSA PCM, none found = test tone.
    pub capture: Option<String>,
    /// `[audio] playback = "auto"`: the ALSA PCM, none found = the system default.
    pub playback: Option<String>,
    /// `[display] connector = "auto"`.
    pub connector: Option<String>,
    pub entries: Vec<Verdict>,
    pub warnings: Vec<String>,
}

impl Choice {
    /// The video source `auto` starts with (the test pattern when no camera qualifies).
    pub fn video_source(&self) -> VideoPlan {
        self.video.first().cloned().unwrap_or(VideoPlan::Test)
    }
}

/// An explicit setting that the machine cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "video.source = \"v4l2:{path}\": no such V4L2 device{}",
        if cameras.is_empty() { " (this machine has no camera; use source = \"test\" or \"auto\")".to_string() } else { format!(" (cameras: {})", cameras.join(", ")) }
    )]
    NoSuchDevice { path: String, cameras: Vec<String> },
    #[error("video.source = \"v4l2:{path}\" is not a usable camera: {why}")]
    NotACamera { path: String, why: String },
    #[error("video.source = \"libcamera\": {0}")]
    NoLibcamera(String),
}

/// x264enc's speed preset for a board with `cores` cores: Pi-class boards need the fastest.
pub fn x264_preset(cores: u32) -> &'static str {
    match cores {
        0..=4 => "ultrafast",
        5..=7 => "superfast",
        _ => "veryfast",
    }
}

/// Largest picture the bcm2835-codec H.264 encoder takes.
const HW_ENC_MAX: (u32, u32) = (1920, 1088);

/// Runs every choice `auto` makes on `listing`.
pub fn choose(listing: &Listing, want: &Wanted) -> Choice {
    let mut entries = Vec::new();
    let mut warnings = Vec::new();
    let video = choose_video(listing, want, &mut entries);
    if video.is_empty() && want.video == VideoRequest::Auto {
        warnings
            .push("video source auto: no camera found, publishing the test pattern".to_string());
    }
    let encoder = choose_encoder(listing, want, &mut entries, &mut warnings);
    decoders(listing, &mut entries);
    let capture = choose_capture(listing, &mut entries);
    if capture.is_none() {
        warnings
            .push("audio capture auto: no microphone found, publishing the test tone".to_string());
    }
    let playback = choose_playback(listing, &mut entries);
    let connector = choose_connector(listing, &mut entries);
    warnings.extend(listing.errors.iter().cloned());
    Choice {
        video,
        encoder,
        capture,
        playback,
        connector,
        entries,
        warnings,
    }
}

/// Resolves an explicit `v4l2:/dev/videoN`: the node must exist and be a real capture device;
/// the mode is chosen as for `auto`.
pub fn plan_v4l2(listing: &Listing, path: &str, want: &Wanted) -> Result<VideoPlan, DeviceError> {
    let Some(node) = listing.v4l2.iter().find(|n| n.path == path) else {
        let cameras = choose_video(listing, want, &mut Vec::new())
            .iter()
            .filter_map(|p| match p {
                VideoPlan::V4l2 { device, .. } => Some(format!("v4l2:{device}")),
                VideoPlan::Libcamera { .. } => Some("libcamera".into()),
                VideoPlan::Test => None,
            })
            .collect();
        return Err(DeviceError::NoSuchDevice {
            path: path.into(),
            cameras,
        });
    };
    v4l2_plan(listing, node, want).map_err(|why| DeviceError::NotACamera {
        path: path.into(),
        why,
    })
}

/// Resolves an explicit `libcamera`: the first libcamera camera that is not a USB one.
pub fn plan_libcamera(listing: &Listing, want: &Wanted) -> Result<VideoPlan, DeviceError> {
    if !listing.gst.has("libcamerasrc") {
        return Err(DeviceError::NoLibcamera(
            "the libcamerasrc GStreamer element is not installed (gstreamer1.0-libcamera)".into(),
        ));
    }
    let cam = listing
        .libcamera
        .iter()
        .find(|c| libcamera_why_not(listing, c.id.as_str()).is_none())
        .ok_or_else(|| DeviceError::NoLibcamera("libcamera lists no CSI camera".into()))?;
    Ok(libcamera_plan(cam, want))
}

// ---- video ----

fn fmt_rate(r: [u32; 2]) -> String {
    if r[1] == 1 || r[1] == 0 {
        r[0].to_string()
    } else {
        format!("{:.2}", f64::from(r[0]) / f64::from(r[1]))
    }
}

/// GStreamer raw format of a V4L2 FourCC roomcam can convert.
pub fn gst_raw_format(fourcc: &str) -> Option<&'static str> {
    Some(match fourcc {
        "YUYV" => "YUY2",
        "UYVY" => "UYVY",
        "YVYU" => "YVYU",
        "VYUY" => "VYUY",
        "NV12" => "NV12",
        "NV21" => "NV21",
        "NV16" => "NV16",
        "YU12" => "I420",
        "YV12" => "YV12",
        "422P" => "Y42B",
        "RGB3" => "RGB",
        "BGR3" => "BGR",
        "RGBP" => "RGB16",
        "XR24" | "BGR4" => "BGRx",
        "XB24" | "RGB4" => "RGBx",
        "GREY" => "GRAY8",
        _ => return None,
    })
}

fn is_jpeg(fourcc: &str) -> bool {
    matches!(fourcc, "MJPG" | "JPEG")
}

/// Raw Bayer (and the Pi's packed/compressed Bayer) FourCCs: need an ISP.
fn is_bayer(fourcc: &str) -> bool {
    const PREFIXES: [&str; 10] = ["BA", "BG", "GB", "GR", "RG", "pB", "pG", "pg", "pR", "PC"];
    matches!(fourcc, "GBRG" | "GRBG" | "RGGB" | "BA81")
        || (fourcc.len() == 4
            && PREFIXES.iter().any(|p| fourcc.starts_with(p))
            && fourcc != "BGR3"
            && fourcc != "BGR4"
            && fourcc != "RGB3"
            && fourcc != "RGB4"
            && fourcc != "RGBP")
}

fn jpeg_decoder(listing: &Listing) -> Option<&'static str> {
    ["jpegdec", "avdec_mjpeg"]
        .into_iter()
        .find(|d| listing.gst.has(d))
}

/// Cost of capturing `w`x`h`@`fps` for the wanted mode: upscaling and too few frames cost most,
/// downscaling and surplus frames a little, compressed capture (decode work) a little.
fn mode_cost(w: u32, h: u32, fps: f64, compressed: bool, want: &Wanted) -> f64 {
    let (ww, wh, wf) = (
        f64::from(want.width.max(1)),
        f64::from(want.height.max(1)),
        f64::from(want.fps.max(1)),
    );
    let (w, h) = (f64::from(w.max(1)), f64::from(h.max(1)));
    let area = (w * h) / (ww * wh);
    let mut cost = if area < 1.0 {
        (1.0 / area).ln() * 4.0
    } else {
        area.ln()
    };
    // A different aspect ratio distorts or crops the picture: worse than upscaling a little.
    cost += ((w / h) / (ww / wh)).ln().abs() * 6.0;
    let fps = fps.max(0.1);
    cost += if fps + 0.5 < wf {
        (wf / fps).ln() * 6.0
    } else {
        (fps / wf).ln().abs() * 0.5
    };
    if compressed {
        cost += 0.05;
    }
    cost
}

struct Mode {
    fourcc: String,
    width: u32,
    height: u32,
    fps: [u32; 2],
    cost: f64,
}

fn rate_f(r: [u32; 2]) -> f64 {
    if r[1] == 0 {
        0.0
    } else {
        f64::from(r[0]) / f64::from(r[1])
    }
}

fn best_mode(formats: &[V4l2Format], jpeg_ok: bool, want: &Wanted) -> Option<Mode> {
    let mut best: Option<Mode> = None;
    let mut consider = |m: Mode| {
        if best.as_ref().is_none_or(|b| m.cost < b.cost) {
            best = Some(m);
        }
    };
    for f in formats {
        let compressed = is_jpeg(&f.fourcc);
        if !(gst_raw_format(&f.fourcc).is_some() || (compressed && jpeg_ok)) {
            continue;
        }
        for s in &f.sizes {
            let rates: Vec<[u32; 2]> = if s.rates.is_empty() {
                vec![[want.fps, 1]]
            } else {
                s.rates.clone()
            };
            for r in rates {
                consider(Mode {
                    fourcc: f.fourcc.clone(),
                    width: s.width,
                    height: s.height,
                    fps: r,
                    cost: mode_cost(s.width, s.height, rate_f(r), compressed, want),
                });
            }
        }
        if let Some(sw) = &f.stepwise {
            let fit = |v: u32, min: u32, max: u32, step: u32| {
                let v = v.clamp(min, max.max(min));
                let step = step.max(1);
                min + (v - min) / step * step
            };
            let w = fit(want.width, sw.min_width, sw.max_width, sw.step_width);
            let h = fit(want.height, sw.min_height, sw.max_height, sw.step_height);
            let fps = sw.max_fps.map_or(want.fps, |m| m.min(want.fps)).max(1);
            consider(Mode {
                fourcc: f.fourcc.clone(),
                width: w,
                height: h,
                fps: [fps, 1],
                cost: mode_cost(w, h, f64::from(fps), compressed, want),
            });
        }
    }
    best
}

/// Why a V4L2 node is no camera for roomcam (checked by driver and capability).
fn v4l2_why_not(listing: &Listing, n: &V4l2Node) -> Option<String> {
    if let Some(e) = &n.error {
        return Some(format!("cannot be queried: {e}"));
    }
    let driver = n.driver.as_str();
    let entity = n.media.as_ref().map(|m| m.entity.as_str()).unwrap_or("");
    if matches!(driver, "unicam" | "rp1-cfe") || driver.contains("cfe") {
        let kind = if !n.has_cap("video_capture") && !n.has_cap("video_capture_mplane") {
            "CSI receiver metadata/config node"
        } else {
            "raw-Bayer CSI sensor node"
        };
        return Some(if listing.libcamera.is_empty() {
            format!(
                "{kind} ({driver}): CSI cameras work only through libcamera, which lists no camera here (install libcamera and gstreamer1.0-libcamera)"
            )
        } else {
            format!("{kind} ({driver}): the CSI camera is used through libcamera")
        });
    }
    if driver.contains("isp") || driver == "pispbe" {
        return Some(format!(
            "ISP node ({driver}): libcamera drives it, not a camera"
        ));
    }
    if n.has_cap("video_m2m")
        || n.has_cap("video_m2m_mplane")
        || driver.contains("codec")
        || driver.contains("hevc")
    {
        return Some(format!(
            "memory-to-memory codec node ({driver} {}): not a camera",
            n.card
        ));
    }
    if entity.contains("isp") {
        return Some(format!("ISP node ({driver} {entity}): not a camera"));
    }
    let capture = n.has_cap("video_capture") || n.has_cap("video_capture_mplane");
    if !capture {
        return Some(if n.has_cap("meta_capture") {
            "metadata node: no video".into()
        } else {
            "no video capture capability".into()
        });
    }
    if !listing.gst.has("v4l2src") {
        return Some(
            "the v4l2src GStreamer element is not installed (gstreamer1.0-plugins-good)".into(),
        );
    }
    if n.formats.is_empty() {
        return Some("offers no capture formats".into());
    }
    let usable = |f: &V4l2Format| gst_raw_format(&f.fourcc).is_some() || is_jpeg(&f.fourcc);
    if !n.formats.iter().any(usable) {
        let list: Vec<&str> = n.formats.iter().map(|f| f.fourcc.as_str()).collect();
        return Some(if n.formats.iter().all(|f| is_bayer(&f.fourcc)) {
            format!(
                "offers only raw Bayer ({}), which needs an ISP (libcamera)",
                list.join(", ")
            )
        } else if n.formats.iter().all(|f| f.fourcc == "H264") {
            "offers only H.264, which roomcam never passes through (it cannot honour keyframe and bitrate requests)".into()
        } else {
            format!("no format roomcam can convert (offers {})", list.join(", "))
        });
    }
    let has_raw = n
        .formats
        .iter()
        .any(|f| gst_raw_format(&f.fourcc).is_some());
    if !has_raw && jpeg_decoder(listing).is_none() {
        return Some("offers only MJPEG and no JPEG decoder (jpegdec) is installed".into());
    }
    None
}

fn v4l2_plan(listing: &Listing, n: &V4l2Node, want: &Wanted) -> Result<VideoPlan, String> {
    if let Some(why) = v4l2_why_not(listing, n) {
        return Err(why);
    }
    let dec = jpeg_decoder(listing);
    let m = best_mode(&n.formats, dec.is_some(), want)
        .ok_or_else(|| "offers no frame size roomcam can use".to_string())?;
    Ok(VideoPlan::V4l2 {
        device: n.path.clone(),
        driver: n.driver.clone(),
        card: n.card.clone(),
        decoder: is_jpeg(&m.fourcc).then(|| dec.unwrap_or("jpegdec").to_string()),
        fourcc: m.fourcc,
        width: m.width,
        height: m.height,
        fps: m.fps,
    })
}

fn libcamera_why_not(listing: &Listing, id: &str) -> Option<String> {
    if id.contains("usb") {
        return Some("a USB camera: used directly through v4l2src".into());
    }
    if !listing.gst.has("libcamerasrc") {
        return Some(
            "the libcamerasrc GStreamer element is not installed (gstreamer1.0-libcamera)".into(),
        );
    }
    None
}

fn libcamera_plan(cam: &super::listing::LibcameraCamera, want: &Wanted) -> VideoPlan {
    // The ISP scales to any size; a camera listing its sizes bounds the request.
    let (mut w, mut h) = (want.width, want.height);
    if let Some(max) = cam
        .sizes
        .iter()
        .max_by_key(|s| u64::from(s.width) * u64::from(s.height))
        && (max.width < w || max.height < h)
    {
        w = max.width;
        h = max.height;
    }
    VideoPlan::Libcamera {
        id: cam.id.clone(),
        model: cam.model.clone(),
        width: w,
        height: h,
        fps: want.fps,
    }
}

/// `MJPG up to 1280x960; YUYV, UYVY 16x16-16376x16376`: formats with the same sizes grouped.
fn size_summary(formats: &[V4l2Format]) -> String {
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    for f in formats {
        let biggest: Option<&FrameSize> = f
            .sizes
            .iter()
            .max_by_key(|s| u64::from(s.width) * u64::from(s.height));
        let sizes = match (biggest, &f.stepwise) {
            (Some(s), _) => format!("up to {}x{}", s.width, s.height),
            (None, Some(sw)) => format!(
                "{}x{}-{}x{}",
                sw.min_width, sw.min_height, sw.max_width, sw.max_height
            ),
            _ => String::new(),
        };
        match groups.iter_mut().find(|g| g.0 == sizes) {
            Some(g) => g.1.push(&f.fourcc),
            None => groups.push((sizes, vec![&f.fourcc])),
        }
    }
    groups
        .into_iter()
        .map(|(sizes, fourccs)| {
            let list = if fourccs.len() > 6 {
                format!("{} (+{} more)", fourccs[..6].join(", "), fourccs.len() - 6)
            } else {
                fourccs.join(", ")
            };
            format!("{list} {sizes}").trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn choose_video(listing: &Listing, want: &Wanted, entries: &mut Vec<Verdict>) -> Vec<VideoPlan> {
    // (class, cost, plan, entry index): class 0 = CSI via libcamera, 1 = UVC, 2 = other capture.
    let mut ranked: Vec<(u8, f64, VideoPlan, usize)> = Vec::new();
    for cam in &listing.libcamera {
        let why = libcamera_why_not(listing, &cam.id);
        let detail = format!("libcamera camera {}", cam.model);
        if why.is_none() {
            ranked.push((0, 0.0, libcamera_plan(cam, want), entries.len()));
        }
        entries.push(Verdict {
            kind: "camera".into(),
            id: format!("libcamera:{}", cam.id),
            detail,
            pick: false,
            rank: None,
            why_not: why,
        });
    }
    for n in &listing.v4l2 {
        let detail = format!(
            "{} \"{}\" {}{}",
            n.driver,
            n.card,
            n.bus_info,
            if n.formats.is_empty() {
                String::new()
            } else {
                format!(": {}", size_summary(&n.formats))
            }
        );
        let plan = v4l2_plan(listing, n, want);
        let why = match &plan {
            Ok(p) => {
                let class = if n.driver == "uvcvideo" { 1 } else { 2 };
                let cost = match p {
                    VideoPlan::V4l2 {
                        width,
                        height,
                        fps,
                        fourcc,
                        ..
                    } => mode_cost(*width, *height, rate_f(*fps), is_jpeg(fourcc), want),
                    _ => 0.0,
                };
                ranked.push((class, cost, p.clone(), entries.len()));
                None
            }
            Err(why) => Some(why.clone()),
        };
        entries.push(Verdict {
            kind: "camera".into(),
            id: n.path.clone(),
            detail,
            pick: false,
            rank: None,
            why_not: why,
        });
    }
    ranked.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let explicit = !matches!(want.video, VideoRequest::Auto);
    for (i, (_, _, plan, idx)) in ranked.iter().enumerate() {
        let e = &mut entries[*idx];
        e.rank = Some(i + 1);
        e.pick = i == 0 && !explicit;
        e.detail = format!("{} -> {}", e.detail, plan.label());
        if i > 0 {
            e.why_not = Some(format!(
                "candidate {}: tried when the ones before deliver no frame",
                i + 1
            ));
        } else if explicit {
            e.why_not = Some("the config names the source explicitly".into());
        }
    }
    ranked.into_iter().map(|r| r.2).collect()
}

// ---- encoders and decoders ----

/// The M2M H.264 encoder node: H.264 out of its capture queue, raw into its output queue.
fn hw_encoder_node(listing: &Listing) -> Option<&V4l2Node> {
    listing.v4l2.iter().find(|n| {
        let m2m = n.has_cap("video_m2m") || n.has_cap("video_m2m_mplane");
        let by_formats = n.formats.iter().any(|f| f.fourcc == "H264")
            && n.output_formats
                .iter()
                .any(|f| gst_raw_format(&f.fourcc).is_some());
        // Formats not enumerated (an older adapter, a busy node): the Pi's encoder by name.
        let by_name =
            n.formats.is_empty() && n.driver == "bcm2835-codec" && n.card.ends_with("encode");
        n.error.is_none() && m2m && (by_formats || by_name)
    })
}

fn choose_encoder(
    listing: &Listing,
    want: &Wanted,
    entries: &mut Vec<Verdict>,
    warnings: &mut Vec<String>,
) -> EncoderPlan {
    let node = hw_encoder_node(listing);
    let hw_why_not = if !listing.gst.has("v4l2h264enc") {
        Some(match node {
            Some(n) => format!(
                "{} has an H.264 encoder but the v4l2h264enc element is missing (gstreamer1.0-plugins-good)",
                n.path
            ),
            None => {
                "not installed, and there is no V4L2 M2M H.264 encoder (a Pi 5 has none)".into()
            }
        })
    } else if node.is_none() {
        Some("no V4L2 M2M H.264 encoder node on this machine (a Pi 5 has none)".into())
    } else if want.width > HW_ENC_MAX.0 || want.height > HW_ENC_MAX.1 {
        Some(format!(
            "{}x{} is above what the encoder takes ({}x{})",
            want.width, want.height, HW_ENC_MAX.0, HW_ENC_MAX.1
        ))
    } else {
        None
    };
    let input_format = node
        .and_then(|n| {
            n.output_formats
                .iter()
                .find(|f| f.fourcc == "YU12")
                .or(n.output_formats.first())
        })
        .and_then(|f| gst_raw_format(&f.fourcc))
        .unwrap_or("I420");
    let hw = EncoderPlan::V4l2h264enc {
        device: node.map(|n| n.path.clone()),
        input_format: input_format.into(),
        level: "4".into(),
    };
    let cores = listing.cores.max(1);
    let sw = EncoderPlan::X264enc {
        speed_preset: x264_preset(cores).into(),
        threads: cores,
    };
    let plan = match want.encoder {
        EncoderRequest::V4l2h264enc => hw,
        EncoderRequest::X264enc => sw,
        EncoderRequest::Auto if hw_why_not.is_none() => hw,
        EncoderRequest::Auto => sw,
    };
    let uses_hw = matches!(plan, EncoderPlan::V4l2h264enc { .. });
    if !uses_hw && !listing.gst.has("x264enc") {
        warnings
            .push("no usable H.264 encoder: install x264enc (gstreamer1.0-plugins-ugly)".into());
    }
    let mut listed: Vec<(String, bool)> = listing
        .gst
        .codecs
        .iter()
        .filter(|c| c.role == "encoder" && c.codec == "h264")
        .map(|c| (c.element.clone(), c.hardware))
        .collect();
    // The two roomcam drives are always listed, with why not when they are missing.
    for name in ["v4l2h264enc", "x264enc"] {
        if !listed.iter().any(|(e, _)| e == name) {
            listed.push((name.into(), name == "v4l2h264enc"));
        }
    }
    listed.sort_by_key(|(e, hwf)| (!hwf, e != "v4l2h264enc", e.clone()));
    for (element, hardware) in listed {
        let (pick, rank, why) = match element.as_str() {
            "v4l2h264enc" => {
                let detail_why = if uses_hw {
                    None
                } else if want.encoder == EncoderRequest::X264enc {
                    Some("the config asks for x264enc".into())
                } else {
                    hw_why_not.clone()
                };
                (uses_hw, uses_hw.then_some(1), detail_why)
            }
            "x264enc" if !listing.gst.has("x264enc") => (false, None, Some("not installed (gstreamer1.0-plugins-ugly)".into())),
            "x264enc" if uses_hw => (false, Some(2), Some("fallback: used when v4l2h264enc fails at start".into())),
            "x264enc" => (true, Some(1), None),
            _ => (false, None, Some("roomcam drives only v4l2h264enc and x264enc (bitrate and keyframe control are wired for those)".into())),
        };
        let detail = match element.as_str() {
            "v4l2h264enc" => format!(
                "hardware{}",
                node.map(|n| format!(
                    ", {} {} ({}), {input_format} in, level 4",
                    n.path, n.driver, n.card
                ))
                .unwrap_or_default()
            ),
            "x264enc" => format!(
                "software, tune=zerolatency speed-preset={} ({cores} cores)",
                x264_preset(cores)
            ),
            _ if hardware => "hardware".into(),
            _ => "software".into(),
        };
        entries.push(Verdict {
            kind: "encoder".into(),
            id: element,
            detail,
            pick,
            rank,
            why_not: why,
        });
    }
    plan
}

fn decoders(listing: &Listing, entries: &mut Vec<Verdict>) {
    let has_hw = listing.gst.has("v4l2h264dec");
    let mut list: Vec<_> = listing
        .gst
        .codecs
        .iter()
        .filter(|c| c.role == "decoder" && (c.codec == "h264" || c.codec == "h265"))
        .collect();
    list.sort_by_key(|c| (c.codec != "h264", !c.hardware, c.element.clone()));
    for c in list {
        let (pick, why) = if c.codec != "h264" {
            (
                false,
                Some(format!(
                    "{} only: roomcam sends and receives H.264",
                    c.codec.to_uppercase()
                )),
            )
        } else if c.element == "v4l2h264dec" {
            (true, None)
        } else if c.element == "avdec_h264" {
            if has_hw {
                (
                    false,
                    Some("fallback: used when v4l2h264dec fails to open".into()),
                )
            } else {
                (true, None)
            }
        } else {
            (
                false,
                Some("the player uses v4l2h264dec or avdec_h264".into()),
            )
        };
        entries.push(Verdict {
            kind: "decoder".into(),
            id: c.element.clone(),
            detail: format!(
                "{} {}",
                c.codec.to_uppercase(),
                if c.hardware { "hardware" } else { "software" }
            ),
            pick,
            rank: None,
            why_not: why,
        });
    }
}

// ---- audio ----

fn is_hdmi(card: &AlsaCard, pcm: &AlsaPcm) -> bool {
    let hay = format!(
        "{} {} {} {} {}",
        card.id, card.name, card.driver, pcm.id, pcm.name
    )
    .to_lowercase();
    hay.contains("hdmi")
}

fn is_usb(card: &AlsaCard) -> bool {
    card.driver.to_lowercase().contains("usb")
        || card.long_name.contains("USB")
        || card.long_name.contains("usb-")
}

fn fake_why_not(card: &AlsaCard) -> Option<String> {
    if let Some(e) = &card.error {
        return Some(format!("cannot be queried: {e}"));
    }
    let hay = format!("{} {} {}", card.id, card.name, card.driver).to_lowercase();
    if hay.contains("loopback") || hay.contains("aloop") {
        return Some("ALSA loopback, not a real device".into());
    }
    if hay.contains("dummy") {
        return Some("dummy sound card".into());
    }
    None
}

/// The DRM connector an HDMI sound card belongs to: `vc4hdmi0` -> `HDMI-A-1`.
pub fn hdmi_connector(card: &AlsaCard) -> Option<String> {
    // The number after "hdmi" (`vc4hdmi1`); a board with one HDMI port says `vc4hdmi`.
    let lower = card.id.to_lowercase();
    let tail = &lower[lower.rfind("hdmi").map_or(lower.len(), |i| i + 4)..];
    let n: u32 = tail
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    Some(format!("HDMI-A-{}", n + 1))
}

fn pcm_name(card: &AlsaCard, pcm: &AlsaPcm, hdmi: bool) -> String {
    if hdmi {
        // vc4-hdmi takes IEC958 subframes only; the `hdmi` PCM of its ALSA config converts.
        format!("hdmi:CARD={},DEV=0", card.id)
    } else {
        format!("plughw:CARD={},DEV={}", card.id, pcm.device)
    }
}

fn pcm_detail(card: &AlsaCard, pcm: &AlsaPcm) -> String {
    format!(
        "card {} {} \"{}\" device {} \"{}\"{}",
        card.index,
        card.id,
        card.name,
        pcm.device,
        pcm.name,
        if card.driver.is_empty() {
            String::new()
        } else {
            format!(" ({})", card.driver)
        }
    )
}

fn rank_and_mark(
    kind: &str,
    mut cands: Vec<(u8, u32, String, Verdict)>,
    mut rest: Vec<Verdict>,
    entries: &mut Vec<Verdict>,
) -> Option<String> {
    cands.sort_by_key(|c| (c.0, c.1));
    let first = cands.first().map(|c| c.2.clone());
    for (i, (_, _, _, mut v)) in cands.into_iter().enumerate() {
        v.rank = Some(i + 1);
        v.pick = i == 0;
        if i > 0 {
            v.why_not = Some(format!(
                "{kind} candidate {}: a preferred one exists",
                i + 1
            ));
        }
        entries.push(v);
    }
    entries.append(&mut rest);
    first
}

fn choose_capture(listing: &Listing, entries: &mut Vec<Verdict>) -> Option<String> {
    let mut cands = Vec::new();
    let mut rest = Vec::new();
    for card in &listing.alsa {
        for pcm in card.pcms.iter().filter(|p| p.capture) {
            let hdmi = is_hdmi(card, pcm);
            let id = pcm_name(card, pcm, hdmi);
            let why = fake_why_not(card).or_else(|| {
                (!listing.gst.has("alsasrc")).then(|| {
                    "the alsasrc GStreamer element is not installed (gstreamer1.0-alsa)".to_string()
                })
            });
            let v = Verdict {
                kind: "microphone".into(),
                id: id.clone(),
                detail: pcm_detail(card, pcm),
                pick: false,
                rank: None,
                why_not: why.clone(),
            };
            if why.is_none() {
                // USB microphones and speakerphones first, then HATs and the rest.
                cands.push((
                    u8::from(!is_usb(card)),
                    card.index * 100 + pcm.device,
                    id,
                    v,
                ));
            } else {
                rest.push(v);
            }
        }
        if card.error.is_some() && card.pcms.is_empty() {
            rest.push(Verdict {
                kind: "microphone".into(),
                id: format!("card {} {}", card.index, card.id),
                detail: card.name.clone(),
                pick: false,
                rank: None,
                why_not: fake_why_not(card),
            });
        }
    }
    rank_and_mark("microphone", cands, rest, entries)
}

fn choose_playback(listing: &Listing, entries: &mut Vec<Verdict>) -> Option<String> {
    let mut cands = Vec::new();
    let mut rest = Vec::new();
    for card in &listing.alsa {
        let has_capture = card.pcms.iter().any(|p| p.capture);
        for pcm in card.pcms.iter().filter(|p| p.playback) {
            let hdmi = is_hdmi(card, pcm);
            let id = pcm_name(card, pcm, hdmi);
            let connector = hdmi.then(|| hdmi_connector(card)).flatten();
            let conn_status = connector
                .as_ref()
                .and_then(|c| listing.drm.iter().find(|d| &d.name == c))
                .map(|d| d.status.as_str());
            let mut why = fake_why_not(card).or_else(|| {
                (!listing.gst.has("alsasink")).then(|| {
                    "the alsasink GStreamer element is not installed (gstreamer1.0-alsa)"
                        .to_string()
                })
            });
            if why.is_none() && hdmi && conn_status == Some("disconnected") {
                why = Some(format!(
                    "HDMI audio of {}, where no display is connected",
                    connector.as_deref().unwrap_or("?")
                ));
            }
            let mut detail = pcm_detail(card, pcm);
            if let Some(c) = &connector {
                detail.push_str(&format!(", HDMI audio of {c}"));
            }
            let v = Verdict {
                kind: "speaker".into(),
                id: id.clone(),
                detail,
                pick: false,
                rank: None,
                why_not: why.clone(),
            };
            if why.is_none() {
                let headphones = format!("{} {}", card.id, card.name)
                    .to_lowercase()
                    .contains("headphones");
                // A USB speakerphone (its microphone and speaker are made for calls), then the
                // HDMI screen's own audio (the picture's sound comes from the screen), other USB,
                // a HAT, HDMI audio of a screen whose state is unknown, the headphone jack.
                let class = if is_usb(card) && has_capture {
                    0
                } else if hdmi && conn_status == Some("connected") {
                    1
                } else if is_usb(card) {
                    2
                } else if hdmi {
                    4
                } else if headphones {
                    5
                } else {
                    3
                };
                cands.push((class, card.index * 100 + pcm.device, id, v));
            } else {
                rest.push(v);
            }
        }
    }
    rank_and_mark("speaker", cands, rest, entries)
}

// ---- displays ----

fn choose_connector(listing: &Listing, entries: &mut Vec<Verdict>) -> Option<String> {
    let mut pick: Option<String> = None;
    let mut sorted: Vec<&DrmConnector> = listing.drm.iter().collect();
    // HDMI first, then DSI and the rest; within a kind by name (HDMI-A-1 before HDMI-A-2).
    sorted.sort_by_key(|c| (!c.name.starts_with("HDMI"), c.name.clone()));
    for c in sorted {
        let why = if let Some(e) = &c.error {
            Some(format!("cannot be queried: {e}"))
        } else if c.name.starts_with("Writeback") {
            Some("writeback connector, not a screen".into())
        } else if c.status != "connected" {
            Some(format!("no display connected (status {})", c.status))
        } else if pick.is_some() {
            Some("another connected display comes first".into())
        } else {
            None
        };
        let is_pick = why.is_none();
        if is_pick {
            pick = Some(c.name.clone());
        }
        entries.push(Verdict {
            kind: "display".into(),
            id: c.name.clone(),
            detail: format!(
                "{} {}{}",
                c.card,
                c.status,
                c.modes
                    .first()
                    .map(|m| format!(", preferred mode {m}"))
                    .unwrap_or_default()
            ),
            pick: is_pick,
            rank: is_pick.then_some(1),
            why_not: why,
        });
    }
    pick
}

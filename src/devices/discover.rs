//! The adapter: reads this machine into a [`Listing`]. Tolerant throughout: a node that vanishes
//! or errors is listed with its error, a missing subsystem is an empty section; nothing panics.

use std::fs;
use std::path::{Path, PathBuf};

use super::listing::{
    AlsaCard, AlsaPcm, DrmConnector, FrameSize, GstCodec, GstRegistry, LibcameraCamera, Listing,
    MediaEntity, Stepwise, V4l2Format, V4l2Node,
};

/// Everything this machine has: V4L2 nodes, libcamera cameras, ALSA cards, GStreamer codecs and
/// DRM connectors.
pub fn discover() -> Listing {
    let mut listing = Listing {
        machine: machine_model(),
        cores: std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1),
        ..Listing::default()
    };
    listing.v4l2 = v4l2_nodes(Path::new("/dev"));
    listing.alsa = alsa_cards();
    listing.drm = drm_connectors(Path::new("/sys/class/drm"));
    match gst_registry() {
        Ok((reg, cams)) => {
            listing.gst = reg;
            listing.libcamera = cams;
        }
        Err(e) => listing.errors.push(format!("GStreamer registry: {e}")),
    }
    listing
}

fn read_trim(p: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| {
        s.trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .to_string()
    })
}

fn machine_model() -> String {
    read_trim("/proc/device-tree/model")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

/// `/dev/videoN` in numeric order (only for a stable listing; the chooser ignores the order).
fn video_paths(dev: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<(u32, PathBuf)> = fs::read_dir(dev)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n = name.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    paths.sort();
    paths.into_iter().map(|p| p.1).collect()
}

fn v4l2_nodes(dev: &Path) -> Vec<V4l2Node> {
    video_paths(dev).iter().map(|p| v4l2_node(p)).collect()
}

fn caps_names(flags: v4l::capability::Flags) -> Vec<String> {
    use v4l::capability::Flags as F;
    [
        (F::VIDEO_CAPTURE, "video_capture"),
        (F::VIDEO_CAPTURE_MPLANE, "video_capture_mplane"),
        (F::VIDEO_OUTPUT, "video_output"),
        (F::VIDEO_OUTPUT_MPLANE, "video_output_mplane"),
        (F::VIDEO_M2M, "video_m2m"),
        (F::VIDEO_M2M_MPLANE, "video_m2m_mplane"),
        (F::META_CAPTURE, "meta_capture"),
        (F::META_OUTPUT, "meta_output"),
        (F::STREAMING, "streaming"),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, n)| n.to_string())
    .collect()
}

fn v4l2_node(path: &Path) -> V4l2Node {
    let mut node = V4l2Node {
        path: path.to_string_lossy().into_owned(),
        media: media_entity(path),
        ..V4l2Node::default()
    };
    let dev = match v4l::Device::with_path(path) {
        Ok(d) => d,
        Err(e) => {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
                " (add the user to the `video` group)"
            } else {
                ""
            };
            node.error = Some(format!("open: {e}{hint}"));
            return node;
        }
    };
    match dev.query_caps() {
        Ok(c) => {
            node.driver = c.driver;
            node.card = c.card;
            node.bus_info = c.bus;
            node.caps = caps_names(c.capabilities);
        }
        Err(e) => {
            node.error = Some(format!("VIDIOC_QUERYCAP: {e}"));
            return node;
        }
    }
    // Formats that fail to enumerate (multi-planar queues the crate does not enumerate, a node
    // that went away) leave the list empty; the chooser says why the node is not used.
    if node.has_cap("video_capture") || node.has_cap("video_m2m") {
        node.formats = formats(&dev, false);
    }
    if node.has_cap("video_m2m") || node.has_cap("video_output") {
        node.output_formats = formats(&dev, true);
    }
    if node.has_cap("video_capture_mplane") || node.has_cap("video_m2m_mplane") {
        node.formats = mplane_formats(&dev, false);
    }
    if node.has_cap("video_output_mplane") || node.has_cap("video_m2m_mplane") {
        node.output_formats = mplane_formats(&dev, true);
    }
    node
}

/// Formats (FourCCs only) of a multi-planar queue: the `v4l` crate enumerates single-planar
/// queues only, and the Pi's bcm2835-codec (the H.264 encoder) and rpivid are multi-planar.
fn mplane_formats(dev: &v4l::Device, output: bool) -> Vec<V4l2Format> {
    let typ = if output {
        v4l::buffer::Type::VideoOutputMplane
    } else {
        v4l::buffer::Type::VideoCaptureMplane
    } as u32;
    let mut out = Vec::new();
    for index in 0..64 {
        // SAFETY: v4l2_fmtdesc is plain data for which all-zero is a valid value;
        // VIDIOC_ENUM_FMT reads `index`/`type` and writes only within the struct we pass.
        let mut desc: v4l::v4l_sys::v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        desc.index = index;
        desc.type_ = typ;
        let r = unsafe {
            v4l::v4l2::ioctl(
                dev.handle().fd(),
                v4l::v4l2::vidioc::VIDIOC_ENUM_FMT,
                &mut desc as *mut _ as *mut std::os::raw::c_void,
            )
        };
        if r.is_err() {
            break;
        }
        let d = v4l::format::Description::from(desc);
        out.push(V4l2Format {
            fourcc: d.fourcc.str().unwrap_or("????").to_string(),
            description: d.description,
            ..V4l2Format::default()
        });
    }
    out
}

fn formats(dev: &v4l::Device, output: bool) -> Vec<V4l2Format> {
    use v4l::video::{Capture, Output};
    let descs = if output {
        Output::enum_formats(dev)
    } else {
        Capture::enum_formats(dev)
    };
    let Ok(descs) = descs else { return Vec::new() };
    descs
        .into_iter()
        .map(|d| {
            let fourcc = d.fourcc.str().unwrap_or("????").to_string();
            let mut f = V4l2Format {
                fourcc,
                description: d.description.clone(),
                ..V4l2Format::default()
            };
            let sizes = if output {
                Output::enum_framesizes(dev, d.fourcc)
            } else {
                Capture::enum_framesizes(dev, d.fourcc)
            };
            for s in sizes.unwrap_or_default() {
                match s.size {
                    v4l::framesize::FrameSizeEnum::Discrete(ds) => {
                        let rates = if output {
                            Vec::new()
                        } else {
                            rates(dev, d.fourcc, ds.width, ds.height)
                        };
                        f.sizes.push(FrameSize {
                            width: ds.width,
                            height: ds.height,
                            rates,
                        });
                    }
                    v4l::framesize::FrameSizeEnum::Stepwise(sw) => {
                        f.stepwise = Some(Stepwise {
                            min_width: sw.min_width,
                            max_width: sw.max_width,
                            min_height: sw.min_height,
                            max_height: sw.max_height,
                            step_width: sw.step_width,
                            step_height: sw.step_height,
                            max_fps: None,
                        });
                    }
                }
            }
            f
        })
        .collect()
}

fn rates(dev: &v4l::Device, fourcc: v4l::FourCC, w: u32, h: u32) -> Vec<[u32; 2]> {
    use v4l::frameinterval::FrameIntervalEnum;
    use v4l::video::Capture;
    Capture::enum_frameintervals(dev, fourcc, w, h)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| match i.interval {
            // An interval of n/d seconds is d/n frames per second.
            FrameIntervalEnum::Discrete(f) if f.numerator > 0 => Some([f.denominator, f.numerator]),
            FrameIntervalEnum::Stepwise(s) if s.min.numerator > 0 => {
                Some([s.min.denominator, s.min.numerator])
            }
            _ => None,
        })
        .map(|[n, d]| {
            let g = gcd(n, d).max(1);
            [n / g, d / g]
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The media-controller entity of a video node, from sysfs (no ioctl).
fn media_entity(path: &Path) -> Option<MediaEntity> {
    let name = path.file_name()?.to_string_lossy().to_string();
    let sys = Path::new("/sys/class/video4linux").join(&name);
    let entity = read_trim(sys.join("name"))?;
    let media = fs::read_dir(sys.join("device"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("media"));
    let model = media
        .as_ref()
        .and_then(|m| read_trim(Path::new("/sys/bus/media/devices").join(m).join("model")))
        .unwrap_or_default();
    Some(MediaEntity {
        device: media.map(|m| format!("/dev/{m}")).unwrap_or_default(),
        model,
        entity,
        sensors: Vec::new(),
    })
}

fn alsa_cards() -> Vec<AlsaCard> {
    let mut cards = Vec::new();
    for card in alsa::card::Iter::new() {
        let card = match card {
            Ok(c) => c,
            Err(e) => {
                cards.push(AlsaCard {
                    index: cards.len() as u32,
                    id: "?".into(),
                    error: Some(e.to_string()),
                    ..AlsaCard::default()
                });
                continue;
            }
        };
        cards.push(alsa_card(&card));
    }
    cards
}

fn alsa_card(card: &alsa::card::Card) -> AlsaCard {
    let index = card.get_index().max(0) as u32;
    let mut out = AlsaCard {
        index,
        id: index.to_string(),
        name: card.get_name().unwrap_or_default(),
        long_name: card.get_longname().unwrap_or_default(),
        ..AlsaCard::default()
    };
    let ctl = match alsa::ctl::Ctl::from_card(card, false) {
        Ok(c) => c,
        Err(e) => {
            let hint = if e.errno() == 13 {
                " (add the user to the `audio` group)"
            } else {
                ""
            };
            out.error = Some(format!("open control: {e}{hint}"));
            return out;
        }
    };
    if let Ok(info) = ctl.card_info() {
        out.id = info.get_id().unwrap_or_default().to_string();
        out.driver = info.get_driver().unwrap_or_default().to_string();
    }
    for dev in alsa::ctl::DeviceIter::new(&ctl) {
        let Ok(device) = u32::try_from(dev) else {
            continue;
        };
        let mut pcm = AlsaPcm {
            device,
            ..AlsaPcm::default()
        };
        for (dir, capture) in [
            (alsa::Direction::Playback, false),
            (alsa::Direction::Capture, true),
        ] {
            if let Ok(info) = ctl.pcm_info(device, 0, dir) {
                if pcm.id.is_empty() {
                    pcm.id = info.get_id().unwrap_or_default().to_string();
                    pcm.name = info.get_name().unwrap_or_default().to_string();
                }
                if capture {
                    pcm.capture = true;
                } else {
                    pcm.playback = true;
                }
            }
        }
        out.pcms.push(pcm);
    }
    out
}

/// Connectors from `/sys/class/drm/cardN-NAME/{status,modes}`.
fn drm_connectors(sys: &Path) -> Vec<DrmConnector> {
    let mut out: Vec<DrmConnector> = fs::read_dir(sys)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.file_name().to_string_lossy().to_string();
            let (card, name) = dir.split_once('-')?;
            if !card.starts_with("card") {
                return None;
            }
            let p = e.path();
            let (status, error) = match fs::read_to_string(p.join("status")) {
                Ok(s) => (s.trim().to_string(), None),
                Err(e) => ("unknown".to_string(), Some(format!("status: {e}"))),
            };
            let modes = fs::read_to_string(p.join("modes"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            Some(DrmConnector {
                card: card.into(),
                name: name.into(),
                status,
                modes,
                error,
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.card, &a.name).cmp(&(&b.card, &b.name)));
    out
}

/// Elements that matter (present or not) and every video encoder/decoder; libcamera cameras
/// through libcamerasrc's device provider.
fn gst_registry() -> Result<(GstRegistry, Vec<LibcameraCamera>), String> {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    gst::init().map_err(|e| e.to_string())?;
    const INTERESTING: [&str; 14] = [
        "v4l2src",
        "libcamerasrc",
        "jpegdec",
        "avdec_mjpeg",
        "x264enc",
        "v4l2h264enc",
        "v4l2h264dec",
        "avdec_h264",
        "alsasrc",
        "alsasink",
        "kmssink",
        "opusenc",
        "opusdec",
        "videotestsrc",
    ];
    let mut reg = GstRegistry {
        elements: INTERESTING
            .iter()
            .filter(|e| gst::ElementFactory::find(e).is_some())
            .map(|e| e.to_string())
            .collect(),
        ..GstRegistry::default()
    };
    let codec_of = |caps: &str| -> Option<&'static str> {
        [
            ("video/x-h264", "h264"),
            ("video/x-h265", "h265"),
            ("image/jpeg", "jpeg"),
            ("video/x-vp8", "vp8"),
            ("video/x-vp9", "vp9"),
            ("video/x-av1", "av1"),
        ]
        .into_iter()
        .find(|(name, _)| caps.contains(name))
        .map(|(_, c)| c)
    };
    for (ty, role, dir) in [
        (
            gst::ElementFactoryType::VIDEO_ENCODER,
            "encoder",
            gst::PadDirection::Src,
        ),
        (
            gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
            "decoder",
            gst::PadDirection::Sink,
        ),
    ] {
        for f in gst::ElementFactory::factories_with_type(ty, gst::Rank::NONE) {
            let caps: String = f
                .static_pad_templates()
                .iter()
                .filter(|t| t.direction() == dir)
                .map(|t| t.caps().to_string())
                .collect();
            let Some(codec) = codec_of(&caps) else {
                continue;
            };
            let klass = f.metadata("klass").unwrap_or_default().to_string();
            reg.codecs.push(GstCodec {
                element: f.name().to_string(),
                role: role.into(),
                codec: codec.into(),
                hardware: klass.contains("Hardware"),
                rank: i32::from(f.rank()).max(0) as u32,
            });
        }
    }
    reg.codecs
        .sort_by(|a, b| (&a.role, &a.codec, &a.element).cmp(&(&b.role, &b.codec, &b.element)));
    let mut cams = Vec::new();
    if let Some(provider) = gst::DeviceProviderFactory::by_name("libcameraprovider") {
        for d in provider.devices() {
            let id = d
                .create_element(None)
                .ok()
                .and_then(|e| {
                    e.find_property("camera-name")?;
                    e.property::<Option<String>>("camera-name")
                })
                .unwrap_or_else(|| d.display_name().to_string());
            cams.push(LibcameraCamera {
                id,
                model: d.display_name().to_string(),
                sizes: Vec::new(),
            });
        }
    }
    Ok((reg, cams))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("roomcam-discover-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn drm_connectors_come_from_sysfs_status_and_modes() {
        let sys = scratch("drm");
        for (dir, status, modes) in [
            ("card1-HDMI-A-1", "connected\n", "1920x1080\n1280x720\n"),
            ("card1-HDMI-A-2", "disconnected\n", ""),
            ("card1-Writeback-1", "unknown\n", ""),
        ] {
            fs::create_dir_all(sys.join(dir)).unwrap();
            fs::write(sys.join(dir).join("status"), status).unwrap();
            fs::write(sys.join(dir).join("modes"), modes).unwrap();
        }
        // Not connectors: the card itself, a version file, a connector whose status vanished.
        fs::create_dir_all(sys.join("card1")).unwrap();
        fs::write(sys.join("version"), "drm 1.1.0").unwrap();
        fs::create_dir_all(sys.join("card0-DSI-1")).unwrap();
        let c = drm_connectors(&sys);
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["DSI-1", "HDMI-A-1", "HDMI-A-2", "Writeback-1"]);
        assert_eq!(c[1].status, "connected");
        assert_eq!(c[1].modes, ["1920x1080", "1280x720"]);
        assert_eq!(c[1].card, "card1");
        assert!(c[0].error.as_deref().unwrap().starts_with("status:"));
        let _ = fs::remove_dir_all(&sys);
    }

    #[test]
    fn video_nodes_that_are_not_devices_are_listed_with_their_error() {
        let dev = scratch("dev");
        fs::write(dev.join("video0"), b"").unwrap(); // opens, but is no V4L2 device
        std::os::unix::fs::symlink(dev.join("gone"), dev.join("video10")).unwrap(); // vanished
        fs::write(dev.join("video-not-a-node"), b"").unwrap();
        fs::write(dev.join("null"), b"").unwrap();
        let nodes = v4l2_nodes(&dev);
        let paths: Vec<String> = nodes
            .iter()
            .map(|n| n.path.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(paths, ["video0", "video10"], "numeric order, only videoN");
        assert!(
            nodes[0]
                .error
                .as_deref()
                .unwrap()
                .starts_with("VIDIOC_QUERYCAP"),
            "{:?}",
            nodes[0].error
        );
        assert!(
            nodes[1].error.as_deref().unwrap().starts_with("open:"),
            "{:?}",
            nodes[1].error
        );
        let _ = fs::remove_dir_all(&dev);
    }

    #[test]
    fn discover_on_this_machine_does_not_panic() {
        let l = discover();
        assert!(l.cores >= 1);
        assert!(l.gst.has("videotestsrc") || !l.errors.is_empty());
    }
}

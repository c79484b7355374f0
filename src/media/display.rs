//! The KMS display as the [`Screen`](super::Screen) needs it: which connector (`[display]
//! connector` or the first connected one), whether it is connected now (DRM sysfs, read on
//! every poll so a screen plugged in later is found), which mode (`[display] mode` or the
//! connector's preferred one) and a `kmssink` set up for it.
//!
//! `force-modesetting=true` with caps that are one of the connector's modes makes the sink set
//! that mode instead of relying on whatever the console left (there may be no mode set at all
//! when the screen was off at boot). In that mode `kmssink` puts a frame on screen only with
//! `drmModePageFlip`, which is also its vsync wait, so `skip-vsync` must stay `false`: with
//! `true` no frame is ever shown, and once the sink frees its blank mode-setting buffer the
//! kernel disables the plane (QEMU: "Display output is not active"). Page-flip events work
//! without vblank interrupts (virtio-gpu) and on atomic drivers (vc4): `docs/media.md`.

use std::path::{Path, PathBuf};

use gstreamer as gst;
use gstreamer::prelude::*;

use super::MediaError;
use super::common::{make, set_if_present};

/// Where the DRM connectors are listed.
const DRM_SYSFS: &str = "/sys/class/drm";

/// One DRM connector as sysfs shows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connector {
    /// `card0`
    pub card: String,
    /// `HDMI-A-1`, `Virtual-1`
    pub name: String,
    /// `connected`, `disconnected`, `unknown`
    pub status: String,
    /// `1920x1080`, ... (first = preferred)
    pub modes: Vec<String>,
    /// The connector's object id (`connector_id` in sysfs, newer kernels), for `kmssink`.
    pub id: Option<i32>,
    /// The DRM driver behind the card (`vc4`, `virtio_gpu`, `i915`), for `kmssink`.
    pub driver: Option<String>,
}

impl Connector {
    pub fn connected(&self) -> bool {
        self.status == "connected"
    }

    /// The preferred (first listed) mode's size.
    pub fn preferred_mode(&self) -> Option<(u32, u32)> {
        self.modes.iter().find_map(|m| parse_size(m))
    }
}

/// `1920x1080` (also `1920x1080i`) -> `(1920, 1080)`.
fn parse_size(mode: &str) -> Option<(u32, u32)> {
    let (w, h) = mode.trim().split_once('x')?;
    let h: String = h.chars().take_while(char::is_ascii_digit).collect();
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// The DRM driver name of `cardN` from its device's driver link. The kernel's device-driver
/// name and the DRM name mostly agree; where they do not, the DRM name is given here.
fn driver_of(sys: &Path, card: &str) -> Option<String> {
    let link = std::fs::read_link(sys.join(card).join("device/driver")).ok()?;
    let name = link.file_name()?.to_string_lossy().to_string();
    Some(
        match name.as_str() {
            "vc4-drm" | "vc4_drm" => "vc4",
            // virtio-gpu-pci: cardN's device is the PCI function, bound to virtio-pci (QEMU).
            "virtio-gpu" | "virtio-pci" | "virtio_pci" => "virtio_gpu",
            other => other,
        }
        .to_string(),
    )
}

/// All connectors under `sys` (normally `/sys/class/drm`), sorted by card and name.
pub fn connectors_in(sys: &Path) -> Vec<Connector> {
    let mut out: Vec<Connector> = std::fs::read_dir(sys)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.file_name().to_string_lossy().to_string();
            let (card, name) = dir.split_once('-')?;
            if !card.starts_with("card") || card.contains("render") {
                return None;
            }
            let p: PathBuf = e.path();
            let status = std::fs::read_to_string(p.join("status")).ok()?;
            let modes = std::fs::read_to_string(p.join("modes"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect();
            let id = std::fs::read_to_string(p.join("connector_id"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            Some(Connector {
                card: card.to_string(),
                name: name.to_string(),
                status: status.trim().to_string(),
                modes,
                id,
                driver: driver_of(sys, card),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.card, &a.name).cmp(&(&b.card, &b.name)));
    out
}

/// The connector to show on: the one named, else the first connected one in the device
/// chooser's order (HDMI first, then by name; never a writeback connector: `docs/devices.md`),
/// else the first of that order (so its status can be reported while waiting).
pub fn pick(connectors: Vec<Connector>, name: Option<&str>) -> Option<Connector> {
    if let Some(n) = name {
        return connectors.into_iter().find(|c| c.name == n);
    }
    let mut screens: Vec<Connector> = connectors
        .into_iter()
        .filter(|c| !c.name.starts_with("Writeback"))
        .collect();
    screens.sort_by_key(|c| (!c.name.starts_with("HDMI"), c.card.clone(), c.name.clone()));
    match screens.iter().position(Connector::connected) {
        Some(i) => Some(screens.swap_remove(i)),
        None => screens.into_iter().next(),
    }
}

/// [`pick`] on this machine's connectors now.
pub fn find_connector(name: Option<&str>) -> Option<Connector> {
    pick(connectors_in(Path::new(DRM_SYSFS)), name)
}

/// `[display] connector` / `mode`: what the watcher looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsTarget {
    pub connector: Option<String>,
    pub mode: Option<(u32, u32, Option<u32>)>,
}

/// How to open `kmssink` on one connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsOpen {
    pub connector_id: Option<i32>,
    pub driver: Option<String>,
    pub width: u32,
    pub height: u32,
}

/// The sink settings for `connector`: the configured mode, else its preferred one, else
/// 1280x720.
pub fn kms_open(connector: &Connector, mode: Option<(u32, u32, Option<u32>)>) -> KmsOpen {
    let (width, height) = match mode {
        Some((w, h, _)) => (w, h),
        None => connector.preferred_mode().unwrap_or((1280, 720)),
    };
    KmsOpen {
        connector_id: connector.id,
        driver: connector.driver.clone(),
        width: width & !1,
        height: height & !1,
    }
}

/// A `kmssink` for `k` (module docs: vsync and mode setting).
pub fn kms_sink(k: &KmsOpen) -> Result<gst::Element, MediaError> {
    let sink = make("kmssink", "screen-out", "KMS/DRM display output")?;
    if let Some(d) = &k.driver {
        sink.set_property("driver-name", d.as_str());
    }
    if let Some(id) = k.connector_id {
        sink.set_property("connector-id", id);
    }
    set_if_present(&sink, "force-modesetting", "true");
    // Mode setting shows frames by page flips only: skipping the flip shows nothing.
    set_if_present(&sink, "skip-vsync", "false");
    sink.set_property("async", false);
    sink.set_property("sync", false);
    Ok(sink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roomcam-display-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn connector(sys: &Path, dir: &str, status: &str, modes: &str) {
        let p = sys.join(dir);
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("status"), format!("{status}\n")).unwrap();
        fs::write(p.join("modes"), modes).unwrap();
    }

    #[test]
    fn the_first_connected_connector_and_its_preferred_mode() {
        let sys = scratch("pick");
        connector(&sys, "card0-HDMI-A-1", "disconnected", "");
        connector(&sys, "card0-Virtual-1", "connected", "1024x768\n800x600\n");
        fs::write(sys.join("card0-Virtual-1/connector_id"), "36\n").unwrap();
        fs::create_dir_all(sys.join("card0")).unwrap();
        let c = pick(connectors_in(&sys), None).expect("a connector");
        assert_eq!(c.name, "Virtual-1");
        assert_eq!(c.preferred_mode(), Some((1024, 768)));
        let k = kms_open(&c, None);
        assert_eq!((k.width, k.height, k.connector_id), (1024, 768, Some(36)));
        assert_eq!(kms_open(&c, Some((800, 600, None))).width, 800);
        let named = pick(connectors_in(&sys), Some("HDMI-A-1")).expect("named");
        assert!(!named.connected());
        assert!(pick(connectors_in(&sys), Some("DSI-1")).is_none());
    }

    #[test]
    fn the_drm_driver_name_of_a_card_from_its_device_driver_link() {
        // What QEMU's virtio-gpu-pci and a Pi's vc4 show in /sys/class/drm.
        let sys = scratch("driver");
        for (card, driver) in [
            ("card0", "virtio-pci"),
            ("card1", "vc4-drm"),
            ("card2", "i915"),
        ] {
            let dev = sys.join(format!("{card}/device"));
            fs::create_dir_all(&dev).unwrap();
            std::os::unix::fs::symlink(format!("../../bus/drivers/{driver}"), dev.join("driver"))
                .unwrap();
        }
        assert_eq!(driver_of(&sys, "card0").as_deref(), Some("virtio_gpu"));
        assert_eq!(driver_of(&sys, "card1").as_deref(), Some("vc4"));
        assert_eq!(driver_of(&sys, "card2").as_deref(), Some("i915"));
        assert_eq!(driver_of(&sys, "card9"), None);
    }

    #[test]
    fn nothing_connected_still_names_a_connector_to_wait_for() {
        let sys = scratch("none");
        connector(&sys, "card1-HDMI-A-2", "disconnected", "");
        connector(&sys, "card1-DSI-1", "disconnected", "");
        connector(&sys, "card1-Writeback-1", "connected", "");
        connector(&sys, "card1-HDMI-A-1", "disconnected", "");
        let c = pick(connectors_in(&sys), None).expect("a connector");
        assert_eq!(c.name, "HDMI-A-1");
        assert!(!c.connected());
        assert_eq!(c.preferred_mode(), None);
        assert_eq!(kms_open(&c, None).width, 1280);
    }

    #[test]
    fn interlaced_modes_parse() {
        assert_eq!(parse_size("1920x1080i"), Some((1920, 1080)));
        assert_eq!(parse_size("junk"), None);
    }
}

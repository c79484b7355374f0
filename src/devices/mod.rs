//! Device discovery and the automatic choice of camera, microphone, speaker, encoder and display
//! (issue 7).
//!
//! | module | owns | I/O |
//! |---|---|---|
//! | [`listing`] | what discovery found, as plain serde data (also the fixture format) | none |
//! | [`choose`] | `auto`: ordered camera candidates and capture mode, encoder, ALSA PCMs, connector; a verdict per entry | none (sans-IO) |
//! | `discover` | reads the machine: V4L2 (`v4l`), media-controller names (sysfs), ALSA (`alsa`), GStreamer registry, DRM (sysfs) | the adapter (feature `device`) |
//!
//! The chooser never looks at node order: a Pi exposes ISP, codec and raw-Bayer sensor nodes
//! before or after the camera, so nodes are judged by driver and capability. `docs/devices.md`
//! has the rules and the fixtures they are tested on.

pub mod choose;
#[cfg(feature = "device")]
mod discover;
pub mod listing;

pub use choose::{
    Choice, DeviceError, EncoderPlan, EncoderRequest, Verdict, VideoPlan, VideoRequest, Wanted,
    choose, plan_libcamera, plan_v4l2,
};
#[cfg(feature = "device")]
pub use discover::discover;
pub use listing::Listing;

use serde::Serialize;

/// What `roomcam devices --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report<'a> {
    pub listing: &'a Listing,
    pub choice: &'a Choice,
}

/// The human table of `roomcam devices`: one line per entry, grouped by kind, saying what `auto`
/// would pick and why not for the others.
pub fn render_table(listing: &Listing, choice: &Choice) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "machine: {} ({} cores)",
        if listing.machine.is_empty() {
            "?"
        } else {
            &listing.machine
        },
        listing.cores
    );
    let groups = [
        ("camera", "Cameras"),
        ("encoder", "H.264 encoders"),
        ("decoder", "Decoders"),
        ("microphone", "Microphones"),
        ("speaker", "Speakers"),
        ("display", "Displays"),
    ];
    for (kind, title) in groups {
        let _ = writeln!(out, "\n{title}:");
        let mut any = false;
        for e in choice.entries.iter().filter(|e| e.kind == kind) {
            any = true;
            let mark = if e.pick { "auto" } else { "    " };
            let _ = writeln!(out, "  [{mark}] {}  {}", e.id, e.detail);
            if let Some(why) = &e.why_not {
                let _ = writeln!(out, "         why not: {why}");
            }
        }
        if !any {
            let _ = writeln!(out, "  (none found)");
        }
    }
    let _ = writeln!(out, "\nauto would use:");
    let _ = writeln!(out, "  video source: {}", choice.video_source().label());
    for (i, c) in choice.video.iter().enumerate().skip(1) {
        let _ = writeln!(out, "    then {}: {}", i + 1, c.label());
    }
    let _ = writeln!(
        out,
        "  encoder:      {}",
        match &choice.encoder {
            EncoderPlan::V4l2h264enc { device, .. } =>
                format!("v4l2h264enc ({})", device.as_deref().unwrap_or("?")),
            EncoderPlan::X264enc { speed_preset, .. } =>
                format!("x264enc speed-preset={speed_preset}"),
        }
    );
    let _ = writeln!(
        out,
        "  microphone:   {}",
        choice.capture.as_deref().unwrap_or("test tone")
    );
    let _ = writeln!(
        out,
        "  speaker:      {}",
        choice.playback.as_deref().unwrap_or("system default")
    );
    let _ = writeln!(
        out,
        "  display:      {}",
        choice.connector.as_deref().unwrap_or("none connected")
    );
    for w in &choice.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

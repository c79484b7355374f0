//! Both systemd units pass `systemd-analyze verify` (with ExecStart pointed at the binaries
//! this build made, since nothing is installed in /usr/bin here), and say what issue 6 asks.

use std::process::Command;

fn verify(unit: &str, bin_name: &str, bin: &str) {
    let text =
        std::fs::read_to_string(format!("{}/systemd/{unit}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = std::env::temp_dir().join(format!("roomcam-units-{}-{unit}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(unit);
    std::fs::write(&path, text.replace(&format!("/usr/bin/{bin_name}"), bin)).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed: run scripts/setup.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only complaints about this unit count (the host's own units may have warnings).
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(unit)).collect();
    assert!(out.status.success() && ours.is_empty(), "{unit}: {stderr}");
}

#[test]
fn units_verify() {
    verify("roomcam.service", "roomcam", env!("CARGO_BIN_EXE_roomcam"));
    verify(
        "roomcam-server.service",
        "roomcam-server",
        env!("CARGO_BIN_EXE_roomcam-server"),
    );
}

#[test]
fn device_unit_has_what_the_appliance_needs() {
    let u = include_str!("../systemd/roomcam.service");
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "After=network-online.target time-sync.target",
        "Wants=network-online.target time-sync.target",
        "Restart=on-failure",
        "User=roomcam",
        "SupplementaryGroups=video audio gpio render",
        "ProtectSystem=strict",
        "CacheDirectory=roomcam",
        "GST_REGISTRY=/var/cache/roomcam/",
        "DeviceAllow=char-video4linux",
        "DeviceAllow=char-media",
        "DeviceAllow=/dev/dma_heap",
        "DeviceAllow=char-alsa",
        "DeviceAllow=char-gpiochip",
        "DeviceAllow=char-drm",
    ] {
        assert!(u.contains(needle), "roomcam.service lacks {needle}");
    }
}

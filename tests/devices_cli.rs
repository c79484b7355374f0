//! `roomcam devices [--json]`: on a recorded listing and on this machine.

use std::process::Command;

fn roomcam(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roomcam"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn json_on_a_recorded_pi4_says_what_auto_picks_and_why_not() {
    let fixture = format!(
        "{}/tests/fixtures/devices/pi4-csi.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let (ok, out, err) = roomcam(&["devices", "--json", "--listing", &fixture]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["choice"]["video"][0]["kind"], "libcamera");
    assert_eq!(v["choice"]["encoder"]["element"], "v4l2h264enc");
    let entries = v["choice"]["entries"].as_array().unwrap();
    let video0 = entries.iter().find(|e| e["id"] == "/dev/video0").unwrap();
    assert_eq!(video0["pick"], false);
    assert!(video0["why_not"].as_str().unwrap().contains("libcamera"));
    assert!(
        entries
            .iter()
            .all(|e| e["pick"] == true || e["why_not"].is_string())
    );
}

#[test]
fn the_table_on_this_machine_never_fails() {
    let (ok, out, err) = roomcam(&["devices"]);
    assert!(ok, "{err}");
    for section in [
        "Cameras:",
        "H.264 encoders:",
        "Microphones:",
        "Speakers:",
        "Displays:",
        "auto would use:",
    ] {
        assert!(out.contains(section), "{section} missing:\n{out}");
    }
    let (ok, out, _) = roomcam(&["devices", "--json"]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["listing"]["cores"].as_u64().unwrap() >= 1);
}

#[test]
fn a_bad_listing_file_is_a_clear_error() {
    let (ok, _, err) = roomcam(&["devices", "--listing", "/nonexistent/listing.json"]);
    assert!(!ok);
    assert!(
        err.contains("cannot read /nonexistent/listing.json"),
        "{err}"
    );
}

//! The `auto` choices on recorded device listings (tests/fixtures/devices): a Pi 4 and a Pi 5
//! with CSI cameras, a Pi 3 with a USB webcam and microphone, and this machine (no camera).

use roomcam::devices::{
    Choice, DeviceError, EncoderPlan, EncoderRequest, Listing, Verdict, VideoPlan, VideoRequest,
    Wanted, choose, plan_libcamera, plan_v4l2,
};

fn fixture(name: &str) -> Listing {
    let path = format!(
        "{}/tests/fixtures/devices/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn want(width: u32, height: u32, fps: u32) -> Wanted {
    Wanted {
        width,
        height,
        fps,
        ..Wanted::default()
    }
}

fn entry<'a>(c: &'a Choice, id: &str) -> &'a Verdict {
    c.entries
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no entry {id}: {:#?}", c.entries))
}

fn why<'a>(c: &'a Choice, id: &str) -> &'a str {
    entry(c, id).why_not.as_deref().unwrap_or("")
}

const FIXTURES: [&str; 4] = ["pi4-csi", "pi5-csi", "pi3-usb", "this-machine"];

#[test]
fn fixtures_are_in_the_listing_format_and_round_trip() {
    for name in FIXTURES {
        let l = fixture(name);
        let back: Listing = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l, "{name}");
    }
}

#[test]
fn every_entry_is_either_picked_or_says_why_not() {
    for name in FIXTURES {
        let c = choose(&fixture(name), &Wanted::default());
        for e in &c.entries {
            assert!(
                e.pick != e.why_not.is_some(),
                "{name}: {e:?} must be picked xor say why not"
            );
        }
        for kind in ["camera", "encoder", "microphone", "speaker", "display"] {
            assert!(
                c.entries
                    .iter()
                    .filter(|e| e.kind == kind && e.pick)
                    .count()
                    <= 1,
                "{name}: more than one {kind} picked"
            );
        }
    }
}

#[test]
fn the_choice_does_not_depend_on_node_order() {
    for name in FIXTURES {
        let l = fixture(name);
        let mut reversed = l.clone();
        reversed.v4l2.reverse();
        reversed.libcamera.reverse();
        let (a, b) = (
            choose(&l, &Wanted::default()),
            choose(&reversed, &Wanted::default()),
        );
        assert_eq!(a.video, b.video, "{name}");
        assert_eq!(a.encoder, b.encoder, "{name}");
    }
}

// ---- Pi 4, Camera Module 3 on CSI ----

#[test]
fn pi4_csi_camera_goes_through_libcamera_never_a_v4l2_node() {
    let c = choose(&fixture("pi4-csi"), &Wanted::default());
    assert_eq!(
        c.video,
        vec![VideoPlan::Libcamera {
            id: "/base/soc/i2c0mux/i2c@1/imx708@1a".into(),
            model: "imx708".into(),
            width: 1280,
            height: 720,
            fps: 30,
        }]
    );
    assert!(entry(&c, "libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a").pick);
    // /dev/video0 offers YUYV (an MC-centric receiver lists everything), but it is the raw
    // Bayer unicam node: judged by driver, not by format or node order.
    assert!(why(&c, "/dev/video0").contains("raw-Bayer CSI sensor node"));
    assert!(why(&c, "/dev/video0").contains("libcamera"));
    assert!(why(&c, "/dev/video1").contains("metadata"));
    for codec in [
        "/dev/video10",
        "/dev/video11",
        "/dev/video12",
        "/dev/video18",
        "/dev/video31",
        "/dev/video19",
    ] {
        assert!(
            why(&c, codec).contains("codec node"),
            "{codec}: {}",
            why(&c, codec)
        );
    }
    for isp in [
        "/dev/video13",
        "/dev/video14",
        "/dev/video15",
        "/dev/video16",
        "/dev/video21",
    ] {
        assert!(why(&c, isp).contains("ISP node"), "{isp}: {}", why(&c, isp));
    }
    assert_eq!(
        c.video_source().gst_description(),
        "libcamerasrc camera-name=\"/base/soc/i2c0mux/i2c@1/imx708@1a\" ! capsfilter caps=\"video/x-raw,width=1280,height=720,framerate=30/1\""
    );
}

#[test]
fn pi4_uses_the_m2m_encoder_with_caps_it_accepts() {
    let l = fixture("pi4-csi");
    let c = choose(&l, &Wanted::default());
    assert_eq!(
        c.encoder,
        EncoderPlan::V4l2h264enc {
            device: Some("/dev/video11".into()),
            input_format: "I420".into(),
            level: "4".into(),
        }
    );
    assert!(entry(&c, "v4l2h264enc").pick);
    assert!(why(&c, "x264enc").contains("fallback"));
    assert_eq!(entry(&c, "x264enc").rank, Some(2));
    // 1080p still fits the encoder; beyond it, software.
    let c = choose(&l, &want(1920, 1080, 30));
    assert_eq!(c.encoder.element(), "v4l2h264enc");
    let c = choose(&l, &want(2560, 1440, 30));
    assert_eq!(c.encoder.element(), "x264enc");
    assert!(why(&c, "v4l2h264enc").contains("above what the encoder takes"));
    // Explicit x264enc is obeyed.
    let c = choose(
        &l,
        &Wanted {
            encoder: EncoderRequest::X264enc,
            ..Wanted::default()
        },
    );
    assert_eq!(
        c.encoder,
        EncoderPlan::X264enc {
            speed_preset: "ultrafast".into(),
            threads: 4
        }
    );
}

#[test]
fn pi4_audio_goes_to_the_connected_hdmi_and_has_no_microphone() {
    let c = choose(&fixture("pi4-csi"), &Wanted::default());
    assert_eq!(c.capture, None);
    assert!(c.warnings.iter().any(|w| w.contains("test tone")));
    assert_eq!(c.playback.as_deref(), Some("hdmi:CARD=vc4hdmi0,DEV=0"));
    assert!(why(&c, "hdmi:CARD=vc4hdmi1,DEV=0").contains("HDMI-A-2"));
    assert_eq!(c.connector.as_deref(), Some("HDMI-A-1"));
    assert!(why(&c, "Writeback-1").contains("writeback"));
    assert!(why(&c, "HDMI-A-2").contains("no display connected"));
}

#[test]
fn pi4_without_libcamerasrc_has_no_camera_and_says_what_to_install() {
    let mut l = fixture("pi4-csi");
    l.gst.elements.retain(|e| e != "libcamerasrc");
    let c = choose(&l, &Wanted::default());
    assert!(c.video.is_empty());
    assert_eq!(c.video_source(), VideoPlan::Test);
    assert!(
        why(&c, "libcamera:/base/soc/i2c0mux/i2c@1/imx708@1a").contains("gstreamer1.0-libcamera")
    );
    assert!(c.warnings.iter().any(|w| w.contains("test pattern")));
    let err = plan_libcamera(&l, &Wanted::default()).unwrap_err();
    assert!(err.to_string().contains("libcamerasrc"), "{err}");

    // No libcamera at all: the unicam node says CSI needs it.
    let mut l = fixture("pi4-csi");
    l.libcamera.clear();
    let c = choose(&l, &Wanted::default());
    assert!(
        why(&c, "/dev/video0").contains("install libcamera"),
        "{}",
        why(&c, "/dev/video0")
    );
}

#[test]
fn pi4_explicit_sources_are_checked_against_the_machine() {
    let l = fixture("pi4-csi");
    let err = plan_v4l2(&l, "/dev/video0", &Wanted::default()).unwrap_err();
    assert!(matches!(err, DeviceError::NotACamera { .. }), "{err:?}");
    assert!(
        err.to_string().contains("v4l2:/dev/video0") && err.to_string().contains("libcamera"),
        "{err}"
    );
    let err = plan_v4l2(&l, "/dev/video11", &Wanted::default()).unwrap_err();
    assert!(err.to_string().contains("codec"), "{err}");
    let err = plan_v4l2(&l, "/dev/video5", &Wanted::default()).unwrap_err();
    assert!(err.to_string().contains("cameras: libcamera"), "{err}");
    assert!(matches!(
        plan_libcamera(&l, &Wanted::default()),
        Ok(VideoPlan::Libcamera { .. })
    ));
    // An explicit source: the chooser ranks but `auto` picks nothing.
    let c = choose(
        &l,
        &Wanted {
            video: VideoRequest::Libcamera,
            ..Wanted::default()
        },
    );
    assert!(!c.entries.iter().any(|e| e.kind == "camera" && e.pick));
}

// ---- Pi 5, Camera Module 3 on CSI ----

#[test]
fn pi5_csi_camera_through_libcamera_and_software_encode() {
    let c = choose(&fixture("pi5-csi"), &Wanted::default());
    assert!(
        matches!(&c.video[..], [VideoPlan::Libcamera { id, .. }] if id.contains("rp1/i2c@88000/imx708"))
    );
    for n in 0..=7 {
        let id = format!("/dev/video{n}");
        assert!(why(&c, &id).contains("rp1-cfe"), "{id}: {}", why(&c, &id));
    }
    for n in 20..=27 {
        let id = format!("/dev/video{n}");
        assert!(why(&c, &id).contains("ISP node"), "{id}: {}", why(&c, &id));
    }
    assert!(why(&c, "/dev/video19").contains("codec node"));
    // No H.264 encoder on a Pi 5: x264enc, the preset for 4 cores.
    assert_eq!(
        c.encoder,
        EncoderPlan::X264enc {
            speed_preset: "ultrafast".into(),
            threads: 4
        }
    );
    assert!(
        why(&c, "v4l2h264enc").contains("Pi 5 has none"),
        "{}",
        why(&c, "v4l2h264enc")
    );
    // The HEVC decoder is hardware but not H.264.
    assert!(why(&c, "v4l2slh265dec").contains("H265 only"));
    assert!(entry(&c, "avdec_h264").pick);
    assert_eq!(c.playback.as_deref(), Some("hdmi:CARD=vc4hdmi0,DEV=0"));
}

// ---- Pi 3, USB webcam + USB microphone ----

#[test]
fn pi3_usb_webcam_mjpeg_at_720p30_with_a_decoder() {
    let c = choose(&fixture("pi3-usb"), &Wanted::default());
    let plan = c.video_source();
    assert_eq!(
        plan,
        VideoPlan::V4l2 {
            device: "/dev/video0".into(),
            driver: "uvcvideo".into(),
            card: "UVC Camera (046d:0825)".into(),
            fourcc: "MJPG".into(),
            width: 1280,
            height: 720,
            fps: [30, 1],
            decoder: Some("jpegdec".into()),
        }
    );
    assert_eq!(
        plan.gst_description(),
        "v4l2src device=\"/dev/video0\" ! image/jpeg,width=1280,height=720,framerate=30/1 ! jpegdec"
    );
    assert!(why(&c, "/dev/video1").contains("metadata"));
    // libcamera lists the webcam too; it is used through v4l2src.
    assert!(
        why(
            &c,
            "libcamera:/base/soc/usb@7e980000/usb-port@1/usb-port@1-1.1.2:1.0-046d:0825"
        )
        .contains("USB camera")
    );
    assert_eq!(c.encoder.element(), "v4l2h264enc");
}

#[test]
fn pi3_capture_mode_follows_the_configured_size_and_rate() {
    let l = fixture("pi3-usb");
    let mode = |w, h, f| match choose(&l, &want(w, h, f)).video_source() {
        VideoPlan::V4l2 {
            fourcc,
            width,
            height,
            fps,
            ..
        } => (fourcc, width, height, fps),
        other => panic!("{other:?}"),
    };
    // Raw where the camera delivers the rate raw (no decode work), MJPEG where only it does.
    assert_eq!(mode(640, 480, 30), ("YUYV".into(), 640, 480, [30, 1]));
    assert_eq!(mode(1280, 720, 30), ("MJPG".into(), 1280, 720, [30, 1]));
    assert_eq!(mode(1280, 720, 7), ("YUYV".into(), 1280, 720, [15, 2]));
    // A size it lacks: the nearest larger one, same aspect, scaled down.
    assert_eq!(mode(1920, 1080, 30), ("MJPG".into(), 1280, 720, [30, 1]));
    assert_eq!(mode(320, 180, 15), ("YUYV".into(), 320, 240, [15, 1]));
    // Raw caps end the description: a named capsfilter, since bare caps as the last link parse
    // as an element named "video" (found by the QEMU test on vivid, docs/qemu.md).
    assert_eq!(
        choose(&l, &want(640, 480, 30))
            .video_source()
            .gst_description(),
        "v4l2src device=\"/dev/video0\" ! capsfilter caps=\"video/x-raw,format=YUY2,width=640,height=480,framerate=30/1\""
    );
}

#[test]
fn pi3_usb_microphone_first_then_hdmi_speaker() {
    let c = choose(&fixture("pi3-usb"), &Wanted::default());
    assert_eq!(c.capture.as_deref(), Some("plughw:CARD=Microphone,DEV=0"));
    assert_eq!(entry(&c, "plughw:CARD=U0x46d0x825,DEV=0").rank, Some(2));
    assert_eq!(c.playback.as_deref(), Some("hdmi:CARD=vc4hdmi,DEV=0"));
    assert!(
        entry(&c, "hdmi:CARD=vc4hdmi,DEV=0")
            .detail
            .contains("HDMI-A-1")
    );
    // The TV off: the headphone jack.
    let mut l = fixture("pi3-usb");
    for d in &mut l.drm {
        d.status = "disconnected".into();
    }
    let c = choose(&l, &Wanted::default());
    assert_eq!(c.playback.as_deref(), Some("plughw:CARD=Headphones,DEV=0"));
    assert_eq!(c.connector, None);
}

#[test]
fn a_camera_offering_only_h264_or_only_mjpeg_without_decoder_is_refused() {
    let mut l = fixture("pi3-usb");
    l.v4l2[0].formats.retain(|f| f.fourcc == "MJPG");
    l.gst
        .elements
        .retain(|e| e != "jpegdec" && e != "avdec_mjpeg");
    l.gst.codecs.retain(|c| c.element != "jpegdec");
    let c = choose(&l, &Wanted::default());
    assert!(
        why(&c, "/dev/video0").contains("no JPEG decoder"),
        "{}",
        why(&c, "/dev/video0")
    );

    let mut l = fixture("pi3-usb");
    for f in &mut l.v4l2[0].formats {
        f.fourcc = "H264".into();
    }
    let c = choose(&l, &Wanted::default());
    assert!(why(&c, "/dev/video0").contains("never passes through"));
    assert!(c.video.is_empty());
}

#[test]
fn usb_and_csi_together_are_ordered_candidates() {
    let mut l = fixture("pi4-csi");
    let usb = fixture("pi3-usb");
    l.v4l2.extend(usb.v4l2.into_iter().take(2).map(|mut n| {
        n.path = n
            .path
            .replace("video0", "video2")
            .replace("video1", "video3");
        n
    }));
    let c = choose(&l, &Wanted::default());
    assert!(matches!(c.video[0], VideoPlan::Libcamera { .. }));
    assert!(matches!(&c.video[1], VideoPlan::V4l2 { device, .. } if device == "/dev/video2"));
    let second = entry(&c, "/dev/video2");
    assert_eq!(second.rank, Some(2));
    assert!(
        second
            .why_not
            .as_deref()
            .unwrap()
            .contains("deliver no frame")
    );
}

#[test]
fn a_node_that_errors_is_listed_with_its_error_not_picked() {
    let mut l = fixture("pi3-usb");
    l.v4l2[0].error = Some("open: No such device (os error 19)".into());
    l.alsa[2].error = Some("open control: Permission denied".into());
    let c = choose(&l, &Wanted::default());
    assert!(why(&c, "/dev/video0").contains("cannot be queried: open: No such device"));
    assert!(c.video.is_empty());
    assert_eq!(c.capture.as_deref(), Some("plughw:CARD=U0x46d0x825,DEV=0"));
}

// ---- this machine ----

#[test]
fn this_machine_has_no_camera_auto_falls_back_explicit_fails_clearly() {
    let l = fixture("this-machine");
    let c = choose(&l, &Wanted::default());
    assert!(c.video.is_empty());
    assert_eq!(c.video_source(), VideoPlan::Test);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("no camera found, publishing the test pattern"))
    );
    assert_eq!(
        c.encoder,
        EncoderPlan::X264enc {
            speed_preset: "ultrafast".into(),
            threads: 2
        }
    );
    assert!(why(&c, "openh264enc").contains("only v4l2h264enc and x264enc"));
    assert!(why(&c, "v4l2h264enc").contains("not installed"));
    assert_eq!(c.capture, None);
    assert_eq!(c.playback, None);
    let err = plan_v4l2(&l, "/dev/video0", &Wanted::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "video.source = \"v4l2:/dev/video0\": no such V4L2 device (this machine has no camera; use source = \"test\" or \"auto\")"
    );
}

#[test]
fn x264_preset_follows_the_cores() {
    use roomcam::devices::choose::x264_preset;
    assert_eq!(x264_preset(1), "ultrafast");
    assert_eq!(x264_preset(4), "ultrafast");
    assert_eq!(x264_preset(6), "superfast");
    assert_eq!(x264_preset(16), "veryfast");
}

#[test]
fn the_table_marks_picks_and_reasons() {
    let l = fixture("pi3-usb");
    let c = choose(&l, &Wanted::default());
    let table = roomcam::devices::render_table(&l, &c);
    assert!(table.contains("[auto] /dev/video0"), "{table}");
    assert!(table.contains("why not: metadata node"), "{table}");
    assert!(
        table.contains("video source: /dev/video0 MJPG 1280x720@30 + jpegdec"),
        "{table}"
    );
    let json = serde_json::to_value(roomcam::devices::Report {
        listing: &l,
        choice: &c,
    })
    .unwrap();
    assert_eq!(json["choice"]["video"][0]["kind"], "v4l2");
    assert_eq!(json["choice"]["encoder"]["element"], "v4l2h264enc");
}

#[test]
fn hdmi_screen_audio_beats_a_usb_speaker_but_not_a_speakerphone() {
    use roomcam::devices::listing::{AlsaCard, AlsaPcm};
    let usb = |index: u32, id: &str, capture: bool| AlsaCard {
        index,
        id: id.into(),
        name: format!("USB {id}"),
        long_name: format!("USB {id} at usb-0000:01:00.0-1.3, full speed"),
        driver: "USB-Audio".into(),
        pcms: vec![AlsaPcm {
            device: 0,
            id: "USB Audio".into(),
            name: "USB Audio".into(),
            capture,
            playback: true,
        }],
        ..AlsaCard::default()
    };
    // A playback-only USB speaker and the TV on HDMI: the picture's sound comes from the TV.
    let mut l = fixture("pi3-usb");
    l.alsa.push(usb(5, "Speaker", false));
    let c = choose(&l, &Wanted::default());
    assert_eq!(c.playback.as_deref(), Some("hdmi:CARD=vc4hdmi,DEV=0"));
    assert_eq!(entry(&c, "plughw:CARD=Speaker,DEV=0").rank, Some(2));
    // The TV unplugged: the USB speaker.
    for d in &mut l.drm {
        d.status = "disconnected".into();
    }
    let c = choose(&l, &Wanted::default());
    assert_eq!(c.playback.as_deref(), Some("plughw:CARD=Speaker,DEV=0"));
    // A USB speakerphone (microphone and speaker in one) is made for calls: it comes first.
    let mut l = fixture("pi3-usb");
    l.alsa.push(usb(6, "Phone", true));
    let c = choose(&l, &Wanted::default());
    assert_eq!(c.playback.as_deref(), Some("plughw:CARD=Phone,DEV=0"));
}

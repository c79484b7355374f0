//! The real outputs are built from `[display] sink` and `[audio] playback` (only constructed
//! here: this machine has no KMS device, desktop or sound card).

use std::time::Duration;

use roomcam::media::{AudioPlayback, DisplaySink, FrameKind, PlayPipeline, PlaySettings};

#[test]
fn kms_window_and_alsa_outputs_are_constructed() {
    for (display, playback) in [
        (DisplaySink::Kms, AudioPlayback::Alsa("hw:0,0".into())),
        (DisplaySink::Window, AudioPlayback::Auto),
        (DisplaySink::Auto, AudioPlayback::None),
    ] {
        let player = PlayPipeline::new(&PlaySettings {
            display,
            playback: playback.clone(),
            playout_delay: Duration::from_millis(30),
        });
        let player = player.unwrap_or_else(|e| panic!("{display:?}/{playback:?}: {e}"));
        assert_eq!(player.decoder(), "avdec_h264");
    }
}

#[test]
fn rtp_clock_rates() {
    assert_eq!(FrameKind::Video.rtp_clock_rate(), 90_000);
    assert_eq!(FrameKind::Audio.rtp_clock_rate(), 48_000);
    let f = roomcam::media::EncodedFrame {
        kind: FrameKind::Video,
        data: vec![],
        pts: Duration::from_millis(1500),
        duration: Duration::from_millis(33),
        keyframe: false,
        capture_unix_ms: None,
    };
    assert_eq!(f.rtp_ticks(), 135_000);
}

//! Publish -> play in process, without a network: the player decodes at least 90% of 300
//! frames, in order, at the published size, reads the published frame numbers back from the
//! pictures, hears the published tone, and keeps audio and video within 80 ms of each other.

mod common;

use common::media::{forward, headless_player, publish_settings, wait_for};
use roomcam::media::{FrameKind, PublishPipeline};

#[test]
fn publish_to_play_loopback_decodes_in_order_with_tone_and_lip_sync() {
    let (publisher, mut rx) =
        PublishPipeline::new(&publish_settings(640, 480, 30, 800)).expect("builds");
    publisher.start().expect("starts");
    let player = headless_player();

    let frames = forward(&mut rx, &player, 300, |_| false);
    let sent = frames.iter().filter(|f| f.kind == FrameKind::Video).count() as u64;
    wait_for(&player, "the last frames to decode", |s| {
        s.video_frames_decoded * 100 >= sent * 90 && s.audio_tone_hz.is_some()
    });
    // Let the tail drain, so the order check sees everything.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let s = player.stats();
    let p = publisher.stats();
    println!("publisher {p:?}\nplayer {s:?}");

    assert_eq!(sent, 300);
    assert!(
        s.video_frames_decoded >= 270,
        "decoded {} of 300",
        s.video_frames_decoded
    );
    assert_eq!((s.width, s.height), (640, 480));
    assert_eq!(s.first_frame_was_keyframe, Some(true));
    // Every decoded picture carried a readable stamp, in order, with no numbers skipped.
    assert_eq!(s.stamped_frames, s.video_frames_decoded);
    assert_eq!(s.unstamped_frames, 0);
    assert_eq!(s.frames_out_of_order, 0);
    assert!(s.frames_skipped <= 30, "skipped {}", s.frames_skipped);
    // The frame numbers are the publisher's, counted from 0 at capture (a frame the leaky
    // capture queue drops under load still took a number, hence the margin above 300).
    let last = s.last_frame_number.expect("a stamped frame");
    assert!((270..330).contains(&last), "last frame number {last}");
    // The stamp's capture time is the publisher's capture time.
    let latency = s.latency_ms_p95.expect("latency samples");
    assert!(
        latency < 5_000,
        "p95 latency {latency} ms is not a stamp we wrote"
    );

    let hz = s.audio_tone_hz.expect("tone");
    assert!((hz - 440.0).abs() <= 440.0 * 0.02, "decoded tone {hz} Hz");
    assert!(
        s.audio_frames_decoded >= 200,
        "audio frames {}",
        s.audio_frames_decoded
    );
    let offset = s.av_offset_ms.expect("audio and video render lag");
    assert!(offset.abs() <= 80.0, "audio/video offset {offset} ms");
    assert!(publisher.error().is_none() && player.error().is_none());
}

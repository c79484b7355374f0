//! A player that starts mid-stream (its first access unit is not a keyframe) decodes nothing
//! before the first keyframe, and nothing corrupt: its first picture is that keyframe.

mod common;

use common::media::{forward, headless_player, publish_settings, wait_for};
use roomcam::media::{FrameKind, PublishPipeline};

#[test]
fn a_late_joiner_decodes_nothing_before_the_first_keyframe() {
    let (publisher, mut rx) =
        PublishPipeline::new(&publish_settings(640, 480, 30, 800)).expect("builds");
    publisher.start().expect("starts");
    let player = headless_player();

    // Join after the first keyframe: skip the first 20 video frames (and the audio with them).
    let mut video_seen = 0;
    let forwarded = forward(&mut rx, &player, 90, |f| {
        if f.kind == FrameKind::Video {
            video_seen += 1;
        }
        video_seen <= 20
    });
    let first_video = forwarded
        .iter()
        .find(|f| f.kind == FrameKind::Video)
        .expect("video");
    assert!(!first_video.keyframe, "the test must join on a delta frame");
    let first_key = forwarded
        .iter()
        .find(|f| f.kind == FrameKind::Video && f.keyframe)
        .expect("a periodic keyframe within 70 frames");
    // Ask for one as an engine would on a PLI; either way the player waits for it.
    let after_key = forwarded
        .iter()
        .filter(|f| f.kind == FrameKind::Video && f.pts >= first_key.pts)
        .count() as u64;
    wait_for(&player, "the frames after the keyframe", |s| {
        s.video_frames_decoded >= after_key * 9 / 10
    });
    let s = player.stats();
    println!("{s:?}");
    let held = forwarded
        .iter()
        .filter(|f| f.kind == FrameKind::Video && f.pts < first_key.pts)
        .count() as u64;
    assert_eq!(s.video_held_for_keyframe, held);
    assert_eq!(s.first_frame_was_keyframe, Some(true));
    assert_eq!(
        s.unstamped_frames, 0,
        "a picture without a valid stamp was decoded (corrupt)"
    );
    assert_eq!(s.frames_out_of_order, 0);
    assert!(s.video_frames_decoded <= after_key);
    assert!(s.audio_frames_decoded > 0);
    // Audio played while video waited for its keyframe, and the two are in sync now.
    let offset = s.av_offset_ms.expect("both streams rendered");
    assert!(offset.abs() <= 80.0, "audio/video offset {offset} ms");
}

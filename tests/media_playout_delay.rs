//! The player's jitter allowance changes while playing: the pipeline latency follows, and
//! pictures keep decoding.

mod common;

use std::time::Duration;

use common::media::{forward_until, headless_player, publish_settings};
use roomcam::media::PublishPipeline;

#[test]
fn playout_delay_changes_while_playing() {
    let (publisher, mut rx) =
        PublishPipeline::new(&publish_settings(320, 240, 30, 400)).expect("builds");
    publisher.start().expect("starts");
    let player = headless_player();
    forward_until(&mut rx, &player, "pictures at 40 ms", |s| {
        s.video_frames_decoded > 5 && s.pipeline_latency_ms == Some(40.0)
    });

    player.set_playout_delay(Duration::from_millis(100));
    let before = player.stats().video_frames_decoded;
    forward_until(&mut rx, &player, "the new latency and more pictures", |s| {
        s.pipeline_latency_ms == Some(100.0) && s.video_frames_decoded >= before + 50
    });
    let s = player.stats();
    assert!(s.video_render_lag_ms.is_some_and(|l| l > 60.0), "{s:?}");
    assert_eq!(s.unstamped_frames, 0);
}

//! A player that joins a running stream gets a keyframe before any other video: the whole
//! cached GOP when it fits (no request to the publisher needed), else the cached keyframe at
//! once and then the keyframe the SFU asks the publisher for.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_audio, check_video_with};
use roomcam::sfu::SfuConfig;

fn late_join(config: SfuConfig, gop: Option<u32>) -> (Net, usize, usize) {
    common::init_log();
    let mut net = Net::new(config);
    let publisher = net.add_client();
    let early = net.add_client();
    let late = net.add_client();
    net.publish(publisher, "cam");
    net.play(early, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients[..2].iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 4, 900, gop);
    net.run_for(Duration::from_millis(1500));
    net.play(late, "cam");
    net.run_for(Duration::from_secs(2));
    net.stop_media();
    net.run_for(Duration::from_millis(300));
    (net, publisher, late)
}

#[test]
fn late_player_starts_from_the_cached_gop() {
    // keyframe every 30 frames (1 s): 120 packets per GOP, the cache holds 600.
    let (net, publisher, late) = late_join(SfuConfig::default(), Some(30));
    let c = &net.clients[late];
    let first = c.video()[0];
    assert!(
        first.keyframe_start,
        "first video packet of the late player is not a keyframe"
    );
    // From the cached GOP on, nothing of the publisher's is skipped.
    check_video_with(c, false);
    check_audio(c);
    let mut m = String::new();
    net.sfu.write_metrics(&mut m);
    assert!(
        m.contains("roomcam_sfu_stream_keyframe_cache_hits_total{stream=\"1/cam\"} 1"),
        "{m}"
    );
    // The cached keyframe arrives at once, not a GOP later.
    let sent = net.clients[publisher].source.frame;
    assert!(
        check_video_with(c, false) as u32 >= sent - 45,
        "late player missed too much"
    );
}

#[test]
fn late_player_gets_the_cached_keyframe_then_a_fresh_one() {
    // No periodic keyframes and a small cache: only the keyframe itself is kept.
    let config = SfuConfig {
        keyframe_cache_packets: 40,
        ..SfuConfig::default()
    };
    let (net, publisher, late) = late_join(config, None);
    let c = &net.clients[late];
    let video = c.video();
    assert!(
        video[0].keyframe_start,
        "first video packet of the late player is not a keyframe"
    );
    let first_frame = video[0].tag.expect("intact").frame;
    assert_eq!(
        first_frame, 0,
        "the cached keyframe is the publisher's first frame"
    );
    // The publisher was asked for a keyframe and sent one; the late player got it.
    assert!(net.clients[publisher].keyframe_requests_seen >= 1);
    assert!(net.clients[publisher].source.keyframes_sent >= 2);
    let keyframes = video.iter().filter(|r| r.keyframe_start).count();
    assert!(keyframes >= 2, "late player got {keyframes} keyframes");
    // Between the cached keyframe and the fresh one nothing else was sent to it.
    let second_kf = video
        .iter()
        .skip(1)
        .position(|r| r.keyframe_start)
        .expect("second keyframe")
        + 1;
    assert!(
        video[1..second_kf]
            .iter()
            .all(|r| r.tag.unwrap().frame == 0)
    );
    check_video_with(c, true);
}

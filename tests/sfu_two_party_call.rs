//! The everyday case: two sessions each publish their camera and play the other's, on one
//! WebRTC session each, renegotiated (publish offer, then play offer). Both see the other's
//! media complete and in order.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_audio, check_video};
use roomcam::sfu::SfuConfig;

#[test]
fn two_sessions_publish_and_play_each_other() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let a = net.add_client();
    let b = net.add_client();
    net.publish(a, "a-cam");
    net.publish(b, "b-cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(a, 5, 1000, None);
    net.start_media(b, 5, 1000, None);
    net.run_for(Duration::from_millis(700));
    // Renegotiate: each now also plays the other.
    net.play(a, "b-cam");
    net.play(b, "a-cam");
    net.run_for(Duration::from_secs(2));
    net.stop_media();
    net.run_for(Duration::from_millis(300));
    for c in [a, b] {
        let frames = check_video(&net.clients[c]);
        assert!(frames > 40, "client {c}: {frames} frames");
        assert!(net.clients[c].video()[0].keyframe_start);
        check_audio(&net.clients[c]);
    }
    assert!(net.failures.is_empty(), "{:?}", net.failures);
}

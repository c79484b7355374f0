//! A player that stops reading (its downlink drops everything) neither slows nor harms the
//! other player: that one still gets every packet, on time; the stalled one is dropped, not
//! buffered without bound.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_video};
use roomcam::sfu::SfuConfig;

#[test]
fn stalled_player_does_not_slow_the_other() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let good = net.add_client();
    let stalled = net.add_client();
    net.publish(publisher, "cam");
    net.play(good, "cam");
    net.play(stalled, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 6, 1100, None);
    net.run_for(Duration::from_millis(500));
    let media_start = net.now - Duration::from_millis(500);

    // The stalled player's downlink now drops everything; it keeps sending (RTCP, STUN).
    net.link_mut(stalled).down_loss = 1.0;
    net.run_for(Duration::from_secs(16));
    net.stop_media();
    net.run_for(Duration::from_millis(300));

    let sent = net.clients[publisher].source.frame as usize;
    let frames = check_video(&net.clients[good]);
    assert!(
        frames >= sent - 1,
        "good player: {frames} of {sent} frames; failures {:?}",
        net.failures
    );
    // On time: every video packet reached the good player within 100 ms of being sent
    // (links are 10 ms each way).
    let c = &net.clients[good];
    for r in c.video() {
        let frame = r.tag.unwrap().frame;
        let sent_at = media_start + Duration::from_micros(33_333) * frame;
        let latency = r.at.saturating_duration_since(sent_at);
        assert!(
            latency < Duration::from_millis(100),
            "frame {frame} took {latency:?}"
        );
    }
    // The stalled player was not buffered without bound: either its packets were dropped at
    // its queue limit or its session was failed (silent downlink -> ICE/idle timeout).
    let mut m = String::new();
    net.sfu.write_metrics(&mut m);
    let dropped = m
        .lines()
        .any(|l| l.starts_with("roomcam_sfu_stream_dropped_packets_total") && !l.ends_with(" 0"));
    let failed = net.failures.iter().any(|(s, _)| *s == net.session(stalled));
    assert!(
        dropped || failed,
        "stalled player neither dropped nor failed: {m}"
    );
    assert!(
        !net.failures
            .iter()
            .any(|(s, _)| *s == net.session(good) || *s == net.session(publisher))
    );
}

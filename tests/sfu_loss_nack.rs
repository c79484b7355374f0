//! With 5% loss between the publisher and the SFU, players still receive complete frames:
//! the SFU NACKs the publisher, forwards the RTX repairs, and players see no gap.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_video, check_video_from};
use roomcam::sfu::SfuConfig;

#[test]
fn five_percent_uplink_loss_is_repaired() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let p1 = net.add_client();
    let p2 = net.add_client();
    net.publish(publisher, "cam");
    net.play(p1, "cam");
    net.play(p2, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 6, 1100, None);
    // Let the first keyframe through cleanly, then lose 5% of everything the publisher sends.
    net.run_for(Duration::from_millis(300));
    net.link_mut(publisher).up_loss = 0.05;
    net.run_for(Duration::from_secs(4));
    net.stop_media();
    net.link_mut(publisher).up_loss = 0.0;
    net.run_for(Duration::from_millis(800));

    let sent = net.clients[publisher].source.frame as usize;
    for p in [p1, p2] {
        let frames = check_video(&net.clients[p]);
        assert!(
            frames >= sent - 1,
            "player {p}: {frames} of {sent} frames complete"
        );
    }
    let mut m = String::new();
    net.sfu.write_metrics(&mut m);
    let nacks: u64 = m
        .lines()
        .find(|l| {
            l.starts_with(
                "roomcam_sfu_stream_nacks_total{stream=\"1/cam\",direction=\"to_publisher\"}",
            )
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(nacks > 0, "the SFU sent no NACKs: {m}");
}

/// Loss from the very first packet, keyframe included: each player still starts on a whole
/// keyframe (SPS first, even when the SPS packet is the one repaired late) and gets every frame
/// after it complete.
#[test]
fn loss_from_the_first_keyframe_on() {
    for seed_round in 0..3u64 {
        let mut net = Net::new(SfuConfig::default());
        let publisher = net.add_client();
        let p1 = net.add_client();
        let p2 = net.add_client();
        net.publish(publisher, "cam");
        net.play(p1, "cam");
        net.play(p2, "cam");
        assert!(net.run_until(Duration::from_secs(5), |n| {
            n.clients.iter().all(|c| c.connected)
        }));
        // Vary the loss pattern between rounds.
        net.run_for(Duration::from_millis(7 * seed_round));
        net.link_mut(publisher).up_loss = 0.08;
        net.start_media(publisher, 8, 1100, Some(45));
        net.run_for(Duration::from_secs(3));
        net.stop_media();
        net.link_mut(publisher).up_loss = 0.0;
        net.run_for(Duration::from_millis(800));
        for p in [p1, p2] {
            let c = &net.clients[p];
            let first = c.video().into_iter().min_by_key(|r| r.seq).expect("video");
            assert!(
                first.keyframe_start,
                "round {seed_round}: player {p} starts mid-frame"
            );
            // The stream's very first packet cannot be NACKed (the SFU has not seen the stream
            // yet): when it was lost, the SFU asked for another keyframe and the player's
            // stream is whole from that one on.
            let video = c.video();
            let from = video
                .iter()
                .filter(|r| r.keyframe_start && r.tag.is_some_and(|t| t.index == 0))
                .map(|r| r.tag.unwrap().frame)
                .min()
                .expect("an SPS-bearing keyframe");
            if from > 0 {
                assert!(net.clients[publisher].keyframe_requests_seen > 0);
            }
            let frames = check_video_from(c, from);
            let sent = net.clients[publisher].source.frame;
            assert!(
                from <= 45,
                "round {seed_round}: player {p} waited until frame {from}"
            );
            assert!(
                frames as u32 + 1 >= sent - from,
                "round {seed_round}: player {p}: {frames} frames from {from} of {sent}"
            );
        }
    }
}

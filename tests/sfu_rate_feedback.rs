//! The publisher is told a target bitrate (REMB) that follows its players' bandwidth
//! estimates, within the configured floor and ceiling, and the metric shows it.

mod common;

use std::time::Duration;

use common::sfu_net::Net;
use roomcam::sfu::SfuConfig;

#[test]
fn publisher_gets_remb_within_floor_and_ceiling() {
    common::init_log();
    let config = SfuConfig {
        min_video_bitrate_bps: 200_000,
        max_video_bitrate_bps: 1_500_000,
        ..SfuConfig::default()
    };
    let mut net = Net::new(config);
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
    net.run_for(Duration::from_secs(4));

    let rembs = &net.clients[publisher].rembs;
    assert!(!rembs.is_empty(), "publisher got no REMB");
    for r in rembs {
        assert!(
            (200_000..=1_500_000).contains(r),
            "REMB {r} outside the floor/ceiling"
        );
    }
    let mut m = String::new();
    net.sfu.write_metrics(&mut m);
    let line = m
        .lines()
        .find(|l| l.starts_with("roomcam_sfu_stream_estimated_bitrate_bps{stream=\"1/cam\"}"))
        .expect("metric");
    let v: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((200_000..=1_500_000).contains(&v), "{line}");
}

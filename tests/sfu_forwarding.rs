//! Two players of one stream receive every packet with intact payload, gap-free sequence
//! numbers and the publisher's RTP timestamps (audio and video), and metrics count it.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_audio, check_video};
use roomcam::sfu::SfuConfig;

#[test]
fn two_players_receive_everything_intact() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let p1 = net.add_client();
    let p2 = net.add_client();
    net.publish(publisher, "cam");
    net.play(p1, "cam");
    net.play(p2, "cam");
    assert!(
        net.run_until(Duration::from_secs(5), |n| n
            .clients
            .iter()
            .all(|c| c.connected)),
        "all clients connect"
    );
    net.start_media(publisher, 6, 1100, None);
    net.run_for(Duration::from_secs(3));
    net.stop_media();
    net.run_for(Duration::from_millis(500));

    let sent_frames = net.clients[publisher].source.frame as usize;
    for p in [p1, p2] {
        let frames = check_video(&net.clients[p]);
        // Everything from the first keyframe on arrives.
        assert!(sent_frames >= 85, "{sent_frames} frames sent");
        assert!(
            frames >= sent_frames - 1,
            "player {p}: {frames} of {sent_frames} frames"
        );
        let audio = check_audio(&net.clients[p]);
        assert!(audio >= net.clients[publisher].source.audio_frame as usize - 2);
        // The first video a player sees is a keyframe.
        let first = net.clients[p]
            .video()
            .into_iter()
            .min_by_key(|r| r.seq)
            .unwrap()
            .tag
            .unwrap();
        assert_eq!(first.frame, 0);
    }
    let mut metrics = String::new();
    net.sfu.write_metrics(&mut metrics);
    assert!(
        metrics.contains("roomcam_sfu_stream_packets_total{stream=\"1/cam\",kind=\"video\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcam_sfu_stream_players{stream=\"1/cam\"} 2"),
        "{metrics}"
    );
    assert!(net.failures.is_empty(), "{:?}", net.failures);
}

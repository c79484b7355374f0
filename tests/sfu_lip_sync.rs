//! Players keep the publisher's lip sync: the SFU translates the publisher's sender reports
//! into the players' (one clock anchor per publisher), so the audio/video offset the publisher
//! states reaches the players — here audio stamped 100 ms before the video sent with it —
//! although both arrive at the SFU at the same time.

mod common;

use std::time::{Duration, SystemTime};

use common::rtc_client::{AUDIO_TICKS, RtcClient, VIDEO_TICKS};
use common::sfu_net::Net;
use roomcam::sfu::SfuConfig;
use str0m::media::MediaKind;

/// NTP time of RTP time 0 according to the latest sender report the player saw for `kind`.
fn ntp_of_rtp_zero(c: &RtcClient, kind: MediaKind, rate: f64) -> SystemTime {
    let (ntp, rtp) = c
        .received
        .iter()
        .rev()
        .filter(|r| r.kind == kind)
        .find_map(|r| r.sender_report)
        .expect("a sender report");
    ntp - Duration::from_secs_f64(rtp as f64 / rate)
}

#[test]
fn sender_reports_carry_the_publishers_av_offset() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let player = net.add_client();
    net.clients[publisher].audio_wallclock_lead = Duration::from_millis(100);
    net.publish(publisher, "cam");
    net.play(player, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 4, 900, None);
    // Audio sender reports come every 5 s: run until the players got one made after the
    // publisher's own first audio report reached the SFU.
    net.run_for(Duration::from_secs(12));

    let c = &net.clients[player];
    let video0 = ntp_of_rtp_zero(c, MediaKind::Video, f64::from(VIDEO_TICKS) * 30.0);
    let audio0 = ntp_of_rtp_zero(c, MediaKind::Audio, f64::from(AUDIO_TICKS) * 50.0);
    let offset = video0.duration_since(audio0).expect("video after audio");
    assert!(
        offset > Duration::from_millis(90) && offset < Duration::from_millis(110),
        "audio/video offset at the player: {offset:?} (the publisher said 100 ms)"
    );
}

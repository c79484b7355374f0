//! A publisher whose source restarts (new SSRCs, a new sequence-number space) mid-stream:
//! players keep one gap-free sequence, get the new source's keyframe before its other video,
//! and receive its frames complete.

mod common;

use std::time::Duration;

use common::sfu_net::Net;
use roomcam::sfu::SfuConfig;
use str0m::media::MediaKind;

#[test]
fn new_source_ssrc_continues_seamlessly() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let player = net.add_client();
    net.publish(publisher, "cam");
    net.play(player, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 4, 900, None);
    net.run_for(Duration::from_secs(1));

    // Restart the source: new SSRCs, sequence numbers from 100, a keyframe next.
    let frames_before = net.clients[publisher].source.frame;
    {
        let c = &mut net.clients[publisher];
        let (v, a) = (c.source.video_mid.unwrap(), c.source.audio_mid.unwrap());
        let mut api = c.rtc.direct_api();
        assert!(
            api.reset_stream_tx(v, None, 0x1234_5678.into(), Some(0x1234_5679.into()))
                .is_some()
        );
        assert!(
            api.reset_stream_tx(a, None, 0x2234_5678.into(), None)
                .is_some()
        );
        c.source.video_seq = 100;
        c.source.audio_seq = 200;
        c.source.keyframe_requested = true;
    }
    net.run_for(Duration::from_secs(1));
    net.stop_media();
    net.run_for(Duration::from_millis(300));

    let c = &net.clients[player];
    for kind in [MediaKind::Video, MediaKind::Audio] {
        let mut seqs: Vec<u64> = c
            .received
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.seq)
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{kind:?}: gap in the player's sequence"
        );
        assert!(
            c.received
                .iter()
                .filter(|r| r.kind == kind)
                .all(|r| r.tag.is_some())
        );
    }
    // After the restart: the first new-source video packet is a keyframe start, and every frame
    // of the new source is complete.
    let video = c.video();
    let after: Vec<_> = video
        .iter()
        .filter(|r| r.tag.unwrap().frame >= frames_before)
        .collect();
    assert!(
        after.len() > 40,
        "{} packets after the restart",
        after.len()
    );
    assert!(after[0].keyframe_start);
    let mut frames = std::collections::HashMap::new();
    for r in &after {
        let t = r.tag.unwrap();
        *frames.entry(t.frame).or_insert(0u16) += 1;
        assert_eq!(
            r.time,
            t.frame.wrapping_mul(common::rtc_client::VIDEO_TICKS)
        );
    }
    let last = *frames.keys().max().unwrap();
    assert!(
        frames.iter().all(|(f, n)| *f == last || *n == 4),
        "{frames:?}"
    );
}

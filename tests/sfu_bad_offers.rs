//! Bad signalling input gets an error code and leaves the server serving everyone else: an
//! offer without H.264 (NoCommonCodec), unparsable SDP (InvalidSdp), a play of a missing
//! stream (StreamNotFound), a candidate before any offer (NoMediaSession), a bad candidate.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_video, key};
use roomcam::protocol::{ErrorCode, TrackMids};
use roomcam::room::MediaCommand;
use roomcam::sfu::SfuConfig;

#[test]
fn bad_offers_get_errors_and_others_are_served() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    let publisher = net.add_client();
    let player = net.add_client();
    let vp8_only =
        net.add_client_with(|c| c.clear_codecs().enable_vp8(true).enable_opus(true, false));
    let confused = net.add_client();
    net.publish(publisher, "cam");
    net.play(player, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients[..2].iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 4, 900, None);
    net.run_for(Duration::from_millis(500));

    // No H.264 in the offer.
    let session = net.session(vp8_only);
    let (mids, sdp) = net.clients[vp8_only].offer_publish();
    net.command(MediaCommand::Publish {
        session,
        stream: key("vp8"),
        mids,
    });
    net.command(MediaCommand::Offer { session, sdp });
    assert_eq!(net.errors_for(vp8_only), vec![ErrorCode::NoCommonCodec]);

    // Candidate before an offer, garbage SDP, play of a missing stream, bad candidate.
    let s = net.session(confused);
    net.command(MediaCommand::Candidate {
        session: s,
        candidate: "candidate:1 1 udp 1 10.0.1.4 40003 typ host".into(),
        sdp_mid: None,
    });
    net.command(MediaCommand::Offer {
        session: s,
        sdp: "v=0\r\nthis is not sdp".into(),
    });
    net.command(MediaCommand::Offer {
        session: s,
        sdp: String::new(),
    });
    net.command(MediaCommand::Play {
        session: s,
        stream: key("nope"),
        mids: TrackMids::default(),
    });
    net.command(MediaCommand::Candidate {
        session: net.session(player),
        candidate: "candidate:garbage".into(),
        sdp_mid: Some("0".into()),
    });
    assert_eq!(
        net.errors_for(confused),
        vec![
            ErrorCode::NoMediaSession,
            ErrorCode::InvalidSdp,
            ErrorCode::InvalidSdp,
            ErrorCode::StreamNotFound
        ]
    );
    assert_eq!(net.errors_for(player), vec![ErrorCode::InvalidCandidate]);

    net.run_for(Duration::from_secs(1));
    net.stop_media();
    net.run_for(Duration::from_millis(300));
    let sent = net.clients[publisher].source.frame as usize;
    let frames = check_video(&net.clients[player]);
    assert!(frames >= sent - 1, "{frames} of {sent}");
    assert!(net.failures.is_empty(), "{:?}", net.failures);
}

#[test]
fn audio_only_offer_with_opus_is_accepted() {
    let mut net = Net::new(SfuConfig::default());
    let c = net.add_client_with(|c| c.clear_codecs().enable_opus(true, false));
    let session = net.session(c);
    let mut api = net.clients[c].rtc.sdp_api();
    api.add_media(
        str0m::media::MediaKind::Audio,
        str0m::media::Direction::SendOnly,
        None,
        None,
        None,
    );
    let (offer, _pending) = api.apply().expect("offer");
    net.command(MediaCommand::Offer {
        session,
        sdp: offer.to_sdp_string(),
    });
    assert!(net.errors_for(c).is_empty(), "{:?}", net.errors_for(c));
    assert!(
        net.signals
            .iter()
            .any(|(s, m)| *s == session && m.kind() == "answer")
    );
}

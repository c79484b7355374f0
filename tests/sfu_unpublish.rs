//! When the room unpublishes a stream its media stops at once and every player is told
//! (`playStopped`); a later play of it gets `StreamNotFound`; a republish works again.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, key};
use roomcam::protocol::{ErrorCode, ServerMessage, TrackMids};
use roomcam::room::MediaCommand;
use roomcam::sfu::SfuConfig;

#[test]
fn unpublish_stops_media_and_tells_players() {
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
    net.start_media(publisher, 4, 900, None);
    net.run_for(Duration::from_secs(1));
    assert!(!net.clients[p1].video().is_empty());

    let session = net.session(publisher);
    net.command(MediaCommand::Unpublish {
        session,
        stream: key("cam"),
    });
    for p in [p1, p2] {
        let s = net.session(p);
        let told = net.signals.iter().any(|(sid, m)| {
            *sid == s
                && matches!(m, ServerMessage::PlayStopped { stream_id, .. } if stream_id == "cam")
        });
        assert!(told, "player {p} was not told");
    }
    // In-flight packets land, then nothing more although the publisher keeps sending.
    net.run_for(Duration::from_millis(100));
    let counts: Vec<usize> = [p1, p2]
        .iter()
        .map(|p| net.clients[*p].received.len())
        .collect();
    net.run_for(Duration::from_secs(1));
    let after: Vec<usize> = [p1, p2]
        .iter()
        .map(|p| net.clients[*p].received.len())
        .collect();
    assert_eq!(counts, after, "media still flows after unpublish");

    // Playing the gone stream is an error.
    let s = net.session(p1);
    net.command(MediaCommand::Play {
        session: s,
        stream: key("cam"),
        mids: TrackMids::default(),
    });
    assert_eq!(net.errors_for(p1), vec![ErrorCode::StreamNotFound]);
    assert!(net.failures.is_empty(), "{:?}", net.failures);
}

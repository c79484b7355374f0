//! A peer that vanishes mid-handshake (offer applied, then silence) is failed after the
//! connect timeout and cleaned up; a peer that vanishes after connecting is failed after the
//! idle timeout. Everyone else is served throughout.

mod common;

use std::time::Duration;

use common::sfu_net::{Net, check_video};
use roomcam::protocol::ErrorCode;
use roomcam::room::MediaCommand;
use roomcam::sfu::SfuConfig;

#[test]
fn vanished_peers_are_cleaned_up_and_others_unaffected() {
    common::init_log();
    let config = SfuConfig {
        connect_timeout: Duration::from_secs(3),
        idle_timeout: Duration::from_secs(4),
        ..SfuConfig::default()
    };
    let mut net = Net::new(config);
    let publisher = net.add_client();
    let player = net.add_client();
    let ghost = net.add_client();
    let quitter = net.add_client();
    // The ghost's packets never arrive: it offers, then nothing.
    net.link_mut(ghost).up_loss = 1.0;
    net.publish(publisher, "cam");
    net.play(player, "cam");
    net.play(ghost, "cam");
    net.play(quitter, "cam");
    assert!(net.run_until(Duration::from_secs(2), |n| {
        [0, 1, 3].iter().all(|i| n.clients[*i].connected)
    }));
    assert_eq!(net.sfu.session_count(), 4);
    net.start_media(publisher, 4, 900, None);
    net.run_for(Duration::from_millis(500));
    // The quitter disappears without a word (both directions dead).
    net.link_mut(quitter).up_loss = 1.0;
    net.link_mut(quitter).down_loss = 1.0;
    net.run_for(Duration::from_secs(6));

    let failed: Vec<_> = net.failures.iter().map(|(s, c)| (s.0, *c)).collect();
    assert!(
        failed.contains(&(net.session(ghost).0, ErrorCode::MediaSessionFailed)),
        "{failed:?}"
    );
    assert!(
        failed.contains(&(net.session(quitter).0, ErrorCode::MediaSessionFailed)),
        "{failed:?}"
    );
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(net.sfu.session_count(), 2);

    // The room then closes them; that is harmless.
    for c in [ghost, quitter] {
        let session = net.session(c);
        net.command(MediaCommand::SessionClosed { session });
    }
    net.run_for(Duration::from_millis(500));
    net.stop_media();
    net.run_for(Duration::from_millis(300));
    let sent = net.clients[publisher].source.frame as usize;
    let frames = check_video(&net.clients[player]);
    assert!(frames >= sent - 1, "{frames} of {sent}");
}

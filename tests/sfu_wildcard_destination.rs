//! An adapter whose socket is bound to 0.0.0.0 (or sits behind a 1:1 NAT) does not know the
//! address a datagram was sent to; the SFU maps it to its advertised candidate and connects.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::sfu_net::{Net, check_video};
use roomcam::sfu::SfuConfig;

#[test]
fn datagrams_to_the_wildcard_address_are_accepted() {
    common::init_log();
    let mut net = Net::new(SfuConfig::default());
    net.receive_destination = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5000)));
    let publisher = net.add_client();
    let player = net.add_client();
    net.publish(publisher, "cam");
    net.play(player, "cam");
    assert!(net.run_until(Duration::from_secs(5), |n| {
        n.clients.iter().all(|c| c.connected)
    }));
    net.start_media(publisher, 4, 900, None);
    net.run_for(Duration::from_secs(1));
    net.stop_media();
    net.run_for(Duration::from_millis(300));
    let sent = net.clients[publisher].source.frame as usize;
    assert!(check_video(&net.clients[player]) >= sent - 1);
}

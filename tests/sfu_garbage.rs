//! Garbage on the media port (random bytes, truncated STUN, fake RTP/RTCP/DTLS, from unknown
//! and from known addresses) never panics and leaves the sessions serving.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::sfu_net::{Net, check_video};
use roomcam::sfu::SfuConfig;

#[test]
fn garbage_datagrams_are_ignored() {
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

    let stranger: SocketAddr = (Ipv4Addr::new(192, 0, 2, 7), 9999).into();
    let known = net.clients[player].addr;
    let mut seed = 12345u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        (seed >> 16) as u8
    };
    for round in 0..200 {
        let len = 1 + (next() as usize * 5) % 1200;
        let mut d: Vec<u8> = (0..len).map(|_| next()).collect();
        // steer the first byte into each demultiplexing range: STUN, DTLS, RTP/RTCP
        d[0] = match round % 4 {
            0 => 0,
            1 => 20 + d[0] % 44,
            2 => 128 + d[0] % 64,
            _ => d[0],
        };
        if round % 5 == 0 && d.len() > 20 {
            // a STUN header claiming more than there is
            d[..4].copy_from_slice(&[0, 1, 0x7f, 0xff]);
            d[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        }
        let from = if round % 2 == 0 { stranger } else { known };
        net.inject(from, &d);
        net.inject(from, &[]);
        net.run_for(Duration::from_millis(10));
    }
    net.run_for(Duration::from_secs(1));
    net.stop_media();
    net.run_for(Duration::from_millis(300));

    let sent = net.clients[publisher].source.frame as usize;
    let frames = check_video(&net.clients[player]);
    assert!(frames >= sent - 1, "{frames} of {sent} frames");
    assert!(net.failures.is_empty(), "{:?}", net.failures);
    let mut m = String::new();
    net.sfu.write_metrics(&mut m);
    assert!(
        m.contains("roomcam_sfu_garbage_datagrams_total")
            && !m.contains("roomcam_sfu_garbage_datagrams_total 0\n"),
        "{m}"
    );
}

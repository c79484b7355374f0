//! ICE-TCP fallback on simulated time: the engine core, the room logic and the SFU in one
//! thread (tests/common/callsim.rs), with a firewall that drops every UDP datagram. The device
//! gives UDP `tcp_fallback_after`, then connects to the SFU's passive TCP candidate, and the
//! call's media flows over it; with UDP working it never opens TCP.

mod common;

use std::time::{Duration, Instant};

use common::callsim::*;
use roomcam::engine::{Command, EngineConfig, Event, PlayerState, TrackKind};
use roomcam::ice_tcp::Transport;

fn playing(e: &Event, s: &str) -> bool {
    matches!(e, Event::PlayerStateUpdate { stream_id, state: PlayerState::Playing, .. } if stream_id == s)
}

/// Two devices log in; A publishes "a-main", B plays it. Returns (a, b) and when the offers
/// went out (within a few ms of this instant).
fn call(sim: &mut CallSim, config: EngineConfig) -> (usize, usize, Instant) {
    let a = sim.add_device_with("pi-a", 3600, config);
    let b = sim.add_device_with("pi-b", 3600, config);
    sim.login(a, "room1");
    sim.login(b, "room1");
    sim.run(Duration::from_millis(100));
    let started = sim.now;
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "a-main".into(),
            extra_info: String::new(),
        },
    );
    sim.command(
        b,
        Command::StartPlaying {
            stream_id: "a-main".into(),
        },
    );
    (a, b, started)
}

fn video_frames(sim: &CallSim, dev: usize) -> usize {
    sim.devices[dev]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .filter(|f| read_video_frame(&f.data).is_some())
        .count()
}

fn sfu_metric(sim: &CallSim, line_start: &str) -> u64 {
    let mut m = String::new();
    sim.sfu.write_metrics(&mut m);
    m.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{m}"))
}

#[test]
fn udp_blocked_call_falls_back_to_tcp_after_the_timeout_and_media_flows() {
    let mut sim = CallSim::new(3);
    sim.udp_blocked = true;
    let config = EngineConfig {
        tcp_fallback_after: Some(Duration::from_secs(3)),
        ..EngineConfig::default()
    };
    let (a, b, started) = call(&mut sim, config);

    // Not before the timeout: UDP gets its chance.
    sim.run(Duration::from_millis(2900));
    assert!(sim.tcp_connects.is_empty(), "{:?}", sim.tcp_connects);
    assert_eq!(sim.devices[b].core.media_transport(), None);

    // Just after it, both devices connect to the SFU's passive candidate, once each.
    sim.run(Duration::from_millis(200));
    let mut connects = sim.tcp_connects.clone();
    connects.sort();
    assert_eq!(connects, vec![(a, sim.sfu_tcp_addr), (b, sim.sfu_tcp_addr)]);
    assert!(sim.now.duration_since(started) >= Duration::from_secs(3));

    sim.run(Duration::from_secs(8));
    assert!(
        sim.events(b).iter().any(|e| playing(e, "a-main")),
        "{:?}",
        sim.events(b)
    );
    let frames = video_frames(&sim, b);
    assert!(frames >= 100, "only {frames} intact video frames over TCP");
    assert_eq!(sim.devices[a].core.media_transport(), Some(Transport::Tcp));
    assert_eq!(sim.devices[b].core.media_transport(), Some(Transport::Tcp));
    // The SFU carried them on its TCP paths: both sessions alive, packets both ways.
    assert_eq!(sim.sfu.session_count(), 2);
    assert!(
        sfu_metric(
            &sim,
            "roomcam_sfu_ice_tcp_packets_total{direction=\"sent\"}"
        ) > 300
    );
    assert!(
        sfu_metric(
            &sim,
            "roomcam_sfu_ice_tcp_packets_total{direction=\"received\"}"
        ) > 300
    );
    // Still only one connect per device: no retry storm once up.
    assert_eq!(sim.tcp_connects.len(), 2);
}

#[test]
fn working_udp_never_opens_tcp() {
    let mut sim = CallSim::new(4);
    let (a, b, _) = call(&mut sim, EngineConfig::default());
    sim.run(Duration::from_secs(10));
    assert!(sim.tcp_connects.is_empty(), "{:?}", sim.tcp_connects);
    assert!(video_frames(&sim, b) >= 100);
    assert_eq!(sim.devices[a].core.media_transport(), Some(Transport::Udp));
    assert_eq!(sim.devices[b].core.media_transport(), Some(Transport::Udp));
    assert_eq!(
        sfu_metric(
            &sim,
            "roomcam_sfu_ice_tcp_packets_total{direction=\"sent\"}"
        ),
        0
    );
}

#[test]
fn fallback_off_means_no_tcp_and_the_blocked_call_does_not_connect() {
    let mut sim = CallSim::new(5);
    sim.udp_blocked = true;
    let config = EngineConfig {
        tcp_fallback_after: None,
        ..EngineConfig::default()
    };
    let (_, b, _) = call(&mut sim, config);
    sim.run(Duration::from_secs(10));
    assert!(sim.tcp_connects.is_empty(), "{:?}", sim.tcp_connects);
    assert_eq!(video_frames(&sim, b), 0);
    assert_eq!(sim.devices[b].core.media_transport(), None);
}

#[test]
fn a_refused_tcp_connect_is_not_retried_for_that_media_session() {
    let mut sim = CallSim::new(6);
    sim.udp_blocked = true;
    // The device is told of a TCP candidate nobody listens on.
    sim.sfu_tcp_addr = "10.0.0.9:50001".parse().unwrap();
    let (_, b, _) = call(&mut sim, EngineConfig::default());
    sim.run(Duration::from_secs(6));
    let of_b = sim.tcp_connects.iter().filter(|(d, _)| *d == b).count();
    assert_eq!(of_b, 1, "{:?}", sim.tcp_connects);
    assert_eq!(video_frames(&sim, b), 0);
}

//! The engine's session on simulated time: reconnection, kicks, token renewal, and a server
//! that answers garbage, closes mid-login or never answers.

mod common;

use std::time::Duration;

use common::callsim::*;
use roomcam::engine::{
    Command, Event, PlayerState, PublisherState, RoomState, RoomStateReason, TrackKind,
};
use roomcam::protocol::UpdateType;

fn reasons(sim: &CallSim, dev: usize) -> Vec<RoomStateReason> {
    sim.events(dev)
        .iter()
        .filter_map(|e| match e {
            Event::RoomStateUpdate { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn lost_signalling_reconnects_and_republishes_by_itself() {
    let mut sim = CallSim::new(11);
    let a = sim.add_device("pi-a", 3600);
    let b = sim.add_device("pi-b", 3600);
    sim.login(a, "r");
    sim.login(b, "r");
    sim.run(Duration::from_millis(50));
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_secs(1));
    // the server is gone for 3 s
    sim.server_down = true;
    sim.cut_signalling(a);
    sim.run(Duration::from_secs(3));
    assert_eq!(
        reasons(&sim, a).last(),
        Some(&RoomStateReason::Reconnecting),
        "{:?}",
        reasons(&sim, a)
    );
    assert!(sim.events(a).iter().any(|e| matches!(e, Event::PublisherStateUpdate { state: PublisherState::PublishRequesting, error_code, .. } if *error_code != 0)));
    sim.server_down = false;
    sim.run(Duration::from_secs(10));
    assert_eq!(
        reasons(&sim, a).last(),
        Some(&RoomStateReason::Reconnected),
        "{:?}",
        reasons(&sim, a)
    );
    let pubs: Vec<PublisherState> = sim
        .events(a)
        .iter()
        .filter_map(|e| match e {
            Event::PublisherStateUpdate { state, .. } => Some(*state),
            _ => None,
        })
        .collect();
    assert_eq!(pubs.last(), Some(&PublisherState::Publishing), "{pubs:?}");
    // B saw the stream go and come back, and can play it
    let ups: Vec<UpdateType> = sim
        .events(b)
        .iter()
        .filter_map(|e| match e {
            Event::RoomStreamUpdate { update_type, .. } => Some(*update_type),
            _ => None,
        })
        .collect();
    assert_eq!(
        ups,
        vec![UpdateType::Add, UpdateType::Delete, UpdateType::Add]
    );
    sim.command(
        b,
        Command::StartPlaying {
            stream_id: "cam".into(),
        },
    );
    sim.run(Duration::from_secs(2));
    assert!(
        sim.devices[b]
            .frames
            .iter()
            .any(|f| f.kind == TrackKind::Video)
    );
}

#[test]
fn reconnect_gives_up_after_the_configured_limit() {
    let mut sim = CallSim::new(19);
    let config = roomcam::engine::EngineConfig {
        reconnect_limit: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    let a = sim.add_device_with("pi-a", 3600, config);
    sim.login(a, "r");
    sim.run(Duration::from_millis(50));
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_secs(1));
    sim.server_down = true;
    sim.cut_signalling(a);
    sim.run(Duration::from_secs(19));
    assert_eq!(
        reasons(&sim, a).last(),
        Some(&RoomStateReason::Reconnecting)
    );
    sim.run(Duration::from_secs(10));
    let last = sim
        .events(a)
        .iter()
        .rev()
        .find(|e| matches!(e, Event::RoomStateUpdate { .. }))
        .unwrap();
    assert!(
        matches!(
            last,
            Event::RoomStateUpdate {
                state: RoomState::Disconnected,
                reason: RoomStateReason::ReconnectFailed,
                error_code: 1005001,
                ..
            }
        ),
        "{last:?}"
    );
    assert!(matches!(
        sim.events(a).last(),
        Some(Event::PublisherStateUpdate {
            state: PublisherState::NoPublish,
            error_code: 1005001,
            ..
        }) | Some(Event::RoomStateUpdate { .. })
    ));
    // it stopped trying: nothing more happens
    let n = sim.events(a).len();
    sim.server_down = false;
    sim.run(Duration::from_secs(30));
    assert_eq!(sim.events(a).len(), n);
}

#[test]
fn reconnect_keeps_trying_by_default() {
    let mut sim = CallSim::new(12);
    let a = sim.add_device("pi-a", 3600);
    sim.login(a, "r");
    sim.run(Duration::from_millis(50));
    sim.server_down = true;
    sim.cut_signalling(a);
    // the default limit is "never": after 2 simulated minutes it is still trying
    sim.run(Duration::from_secs(120));
    assert_eq!(
        reasons(&sim, a).last(),
        Some(&RoomStateReason::Reconnecting)
    );
    assert_eq!(sim.devices[a].core.room_state(), RoomState::Connecting);
}

#[test]
fn duplicate_login_kicks_out_without_reconnecting() {
    let mut sim = CallSim::new(13);
    let a = sim.add_device("same", 3600);
    let a2 = sim.add_device("same", 3600);
    sim.login(a, "r");
    sim.run(Duration::from_millis(50));
    sim.login(a2, "r");
    sim.run(Duration::from_secs(5));
    let last = sim
        .events(a)
        .iter()
        .rev()
        .find(|e| matches!(e, Event::RoomStateUpdate { .. }))
        .unwrap();
    assert!(
        matches!(
            last,
            Event::RoomStateUpdate {
                state: RoomState::Disconnected,
                reason: RoomStateReason::KickOut,
                error_code: 1002006,
                ..
            }
        ),
        "{last:?}"
    );
    assert_eq!(reasons(&sim, a2).last(), Some(&RoomStateReason::Logined));
}

#[test]
fn token_will_expire_and_renewal_keeps_the_session() {
    let mut sim = CallSim::new(14);
    let a = sim.add_device("pi-a", 120);
    sim.devices[a].auto_renew = true;
    sim.login(a, "r");
    sim.run(Duration::from_secs(600));
    let warnings = sim
        .events(a)
        .iter()
        .filter(|e| matches!(e, Event::TokenWillExpire { .. }))
        .count();
    assert!(
        warnings >= 4,
        "{warnings} warnings in 10 minutes of 2-minute tokens"
    );
    assert_eq!(sim.devices[a].core.room_state(), RoomState::Connected);
    assert_eq!(
        reasons(&sim, a),
        vec![RoomStateReason::Logining, RoomStateReason::Logined]
    );
    // the renewed token is the one the engine would log in with again
    let t = sim.devices[a].core.token().unwrap().to_string();
    let c = roomcam::auth::token04::decode(&t, SECRET, sim.unix(), Default::default()).unwrap();
    assert!(c.expire > sim.unix());
}

#[test]
fn without_renewal_the_token_runs_out() {
    let mut sim = CallSim::new(15);
    let a = sim.add_device("pi-a", 120);
    sim.login(a, "r");
    sim.run(Duration::from_secs(200));
    assert!(
        sim.events(a)
            .iter()
            .any(|e| matches!(e, Event::TokenWillExpire { .. }))
    );
    let last = sim
        .events(a)
        .iter()
        .rev()
        .find(|e| matches!(e, Event::RoomStateUpdate { .. }))
        .unwrap();
    assert!(
        matches!(
            last,
            Event::RoomStateUpdate {
                reason: RoomStateReason::KickOut,
                error_code: 1002008,
                ..
            }
        ),
        "{last:?}"
    );
}

#[test]
fn login_fails_clearly_when_the_server_is_away_silent_or_rude() {
    // refused
    let mut sim = CallSim::new(16);
    let a = sim.add_device("pi-a", 3600);
    sim.devices[a].refuse_connect = true;
    sim.login(a, "r");
    sim.run(Duration::from_millis(10));
    assert!(
        matches!(
            sim.events(a).last(),
            Some(Event::RoomStateUpdate {
                reason: RoomStateReason::LoginFailed,
                error_code: 1005003,
                ..
            })
        ),
        "{:?}",
        sim.events(a)
    );
    // never answers: the login timeout fires
    let b = sim.add_device("pi-b", 3600);
    sim.devices[b].deaf = true;
    sim.login(b, "r");
    sim.run(Duration::from_secs(11));
    assert!(
        matches!(
            sim.events(b).last(),
            Some(Event::RoomStateUpdate {
                reason: RoomStateReason::LoginFailed,
                error_code: 1005002,
                ..
            })
        ),
        "{:?}",
        sim.events(b)
    );
    // answers garbage
    let c = sim.add_device("pi-c", 3600);
    sim.devices[c].deaf = true;
    sim.login(c, "r");
    let now = sim.now;
    sim.devices[c]
        .core
        .handle_text(now, "{\"type\":\"loginResult\",\"roomId\":5}");
    sim.pump();
    assert!(
        matches!(
            sim.events(c).last(),
            Some(Event::RoomStateUpdate {
                reason: RoomStateReason::LoginFailed,
                error_code: 1005004,
                ..
            })
        ),
        "{:?}",
        sim.events(c)
    );
    // an unknown message type from a newer server is ignored
    let d = sim.add_device("pi-d", 3600);
    sim.login(d, "r");
    let now = sim.now;
    sim.devices[d]
        .core
        .handle_text(now, "{\"type\":\"somethingNew\",\"x\":1}");
    sim.run(Duration::from_millis(50));
    assert_eq!(
        reasons(&sim, d),
        vec![RoomStateReason::Logining, RoomStateReason::Logined]
    );
    // a bad token
    let e = sim.add_device("pi-e", -1000);
    sim.login(e, "r");
    sim.run(Duration::from_millis(50));
    assert!(
        matches!(
            sim.events(e).last(),
            Some(Event::RoomStateUpdate {
                reason: RoomStateReason::LoginFailed,
                error_code: 1001002,
                ..
            })
        ),
        "{:?}",
        sim.events(e)
    );
}

#[test]
fn playing_a_missing_stream_and_publishing_a_taken_one_fail_with_codes() {
    let mut sim = CallSim::new(17);
    let a = sim.add_device("pi-a", 3600);
    let b = sim.add_device("pi-b", 3600);
    sim.login(a, "r");
    sim.login(b, "r");
    sim.run(Duration::from_millis(50));
    sim.command(
        a,
        Command::StartPlaying {
            stream_id: "nobody".into(),
        },
    );
    sim.run(Duration::from_millis(50));
    assert!(
        matches!(
            sim.events(a).last(),
            Some(Event::PlayerStateUpdate {
                state: PlayerState::NoPlay,
                error_code: 1004001,
                ..
            })
        ),
        "{:?}",
        sim.events(a)
    );
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_millis(300));
    sim.command(
        b,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_millis(300));
    assert!(
        sim.events(b).iter().any(|e| matches!(
            e,
            Event::PublisherStateUpdate {
                state: PublisherState::NoPublish,
                error_code: 1003002,
                ..
            }
        )),
        "{:?}",
        sim.events(b)
    );
    // the first publisher is unaffected
    assert!(matches!(
        sim.events(a)
            .iter()
            .rev()
            .find(|e| matches!(e, Event::PublisherStateUpdate { .. })),
        Some(Event::PublisherStateUpdate {
            state: PublisherState::Publishing,
            ..
        })
    ));
    // publishing before login is refused at once
    let c = sim.add_device("pi-c", 3600);
    sim.command(
        c,
        Command::StartPublishing {
            stream_id: "x".into(),
            extra_info: String::new(),
        },
    );
    assert!(matches!(
        sim.events(c).last(),
        Some(Event::PublisherStateUpdate {
            error_code: 1000006,
            ..
        })
    ));
}

#[test]
fn logout_tells_peers_at_once() {
    let mut sim = CallSim::new(18);
    let a = sim.add_device("pi-a", 3600);
    let b = sim.add_device("pi-b", 3600);
    sim.login(a, "r");
    sim.login(b, "r");
    sim.run(Duration::from_millis(50));
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_millis(300));
    sim.command(
        a,
        Command::LogoutRoom {
            room_id: "r".into(),
        },
    );
    // no time passes: the DELETEs are already out
    assert!(sim.events(b).iter().any(|e| matches!(
        e,
        Event::RoomStreamUpdate {
            update_type: UpdateType::Delete,
            ..
        }
    )));
    assert!(sim.events(b).iter().any(|e| matches!(
        e,
        Event::RoomUserUpdate {
            update_type: UpdateType::Delete,
            ..
        }
    )));
    assert!(
        matches!(
            sim.events(a).last(),
            Some(Event::RoomStateUpdate {
                reason: RoomStateReason::Logout,
                ..
            })
        ),
        "{:?}",
        sim.events(a)
    );
}

//! The engine's tokio adapter over real sockets: two engines and a room service on loopback,
//! WebSocket signalling and UDP media through the SFU, synthetic frames end to end.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::callsim::read_video_frame;
use common::server::*;
use common::synthetic::{Gate, Recorded, SyntheticBackend};
use roomcam::engine::{
    Credential, Engine, EngineOptions, EngineProfile, Event, PlayerState, PublisherState,
    RoomStateReason, TrackKind,
};

async fn engine(
    srv: &TestServer,
    user: &str,
) -> (
    Engine,
    tokio::sync::mpsc::UnboundedReceiver<Event>,
    Recorded,
) {
    engine_with(srv, user, None).await
}

async fn engine_with(
    srv: &TestServer,
    user: &str,
    playback_gate: Option<Gate>,
) -> (
    Engine,
    tokio::sync::mpsc::UnboundedReceiver<Event>,
    Recorded,
) {
    let profile = EngineProfile {
        app_id: APP,
        user_id: user.into(),
        user_name: user.into(),
        credential: Credential::Token(token(user, None, all(), 3600)),
        scenario: 0,
    };
    let mut opts = EngineOptions::new(&srv.ws_url());
    opts.media_bind = "127.0.0.1:0".parse().unwrap();
    let rec = Recorded::default();
    let (e, ev) = Engine::create(
        profile,
        opts,
        Box::new(SyntheticBackend {
            rec: rec.clone(),
            playback_gate,
        }),
    )
    .await
    .unwrap();
    (e, ev, rec)
}

async fn wait_for(
    ev: &mut tokio::sync::mpsc::UnboundedReceiver<Event>,
    what: &str,
    f: impl Fn(&Event) -> bool,
) -> Event {
    let r = tokio::time::timeout(HANG_GUARD, async {
        loop {
            let e = ev.recv().await.expect("event stream ended");
            if f(&e) {
                return e;
            }
        }
    })
    .await;
    r.unwrap_or_else(|_| panic!("no {what} within the hang guard"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_call_over_loopback() {
    let srv = TestServer::default().await;
    let (a, mut a_ev, _) = engine(&srv, "dev-a").await;
    let (b, mut b_ev, b_rec) = engine(&srv, "dev-b").await;
    a.login_room("room1", true, None).unwrap();
    wait_for(&mut a_ev, "A logged in", |e| {
        matches!(
            e,
            Event::RoomStateUpdate {
                reason: RoomStateReason::Logined,
                ..
            }
        )
    })
    .await;
    b.login_room("room1", true, None).unwrap();
    wait_for(&mut b_ev, "B logged in", |e| {
        matches!(
            e,
            Event::RoomStateUpdate {
                reason: RoomStateReason::Logined,
                ..
            }
        )
    })
    .await;
    a.start_publishing_stream("dev-a-main", "").unwrap();
    wait_for(&mut a_ev, "A publishing", |e| {
        matches!(
            e,
            Event::PublisherStateUpdate {
                state: PublisherState::Publishing,
                ..
            }
        )
    })
    .await;
    wait_for(&mut b_ev, "the stream ADD", |e| {
        matches!(e, Event::RoomStreamUpdate { .. })
    })
    .await;
    b.start_playing_stream("dev-a-main").unwrap();
    wait_for(&mut b_ev, "B playing", |e| {
        matches!(
            e,
            Event::PlayerStateUpdate {
                state: PlayerState::Playing,
                ..
            }
        )
    })
    .await;
    // wait (hang guard) until 100 video frames arrived
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let n = b_rec
            .frames
            .lock()
            .unwrap()
            .iter()
            .filter(|f| f.kind == TrackKind::Video)
            .count();
        if n >= 100 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {n} frames arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let frames: Vec<(u32, bool)> = b_rec
        .frames
        .lock()
        .unwrap()
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| read_video_frame(&f.data).expect("damaged frame"))
        .collect();
    assert!(frames[0].1, "first frame is not a keyframe");
    for w in frames.windows(2) {
        assert!(w[1].0 > w[0].0, "out of order");
    }
    let st = b.status();
    assert!(st.players["dev-a-main"].video_frames_received >= 100);
    assert!(a.status().publishers["dev-a-main"].video_frames_sent >= 100);
    // destroy logs out: B sees the DELETE and its player ends
    a.destroy().await;
    wait_for(&mut b_ev, "stream DELETE", |e| {
        matches!(
            e,
            Event::RoomStreamUpdate {
                update_type: roomcam::protocol::UpdateType::Delete,
                ..
            }
        )
    })
    .await;
    b.destroy().await;
    srv.stop().await;
}

/// A pipeline start that takes long (seconds on a slow board, up to twenty under emulation)
/// does not stall the engine: while B's playback start is held, B still hears the room (A's
/// stream DELETE arrives), and the playback that finally starts for a stream no longer
/// played is stopped, not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_pipeline_start_does_not_stall_the_engine() {
    let srv = TestServer::default().await;
    let gate = Gate::default();
    let _open_at_the_end = gate.opened_on_drop();
    let (a, mut a_ev, _) = engine(&srv, "dev-a").await;
    let (b, mut b_ev, b_rec) = engine_with(&srv, "dev-b", Some(gate.clone())).await;
    for (e, ev) in [(&a, &mut a_ev), (&b, &mut b_ev)] {
        e.login_room("room1", true, None).unwrap();
        wait_for(ev, "logged in", |e| {
            matches!(
                e,
                Event::RoomStateUpdate {
                    reason: RoomStateReason::Logined,
                    ..
                }
            )
        })
        .await;
    }
    a.start_publishing_stream("dev-a-main", "").unwrap();
    wait_for(&mut b_ev, "the stream ADD", |e| {
        matches!(e, Event::RoomStreamUpdate { .. })
    })
    .await;
    b.start_playing_stream("dev-a-main").unwrap();
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while b_rec.playback_starts.load(Ordering::SeqCst) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no playback start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // B's playback start is held. A leaves: B's engine must still read the room service.
    a.logout_room("room1").unwrap();
    wait_for(&mut b_ev, "stream DELETE while a start is held", |e| {
        matches!(
            e,
            Event::RoomStreamUpdate {
                update_type: roomcam::protocol::UpdateType::Delete,
                ..
            }
        )
    })
    .await;
    assert_eq!(b_rec.live_playbacks.load(Ordering::SeqCst), 0);
    // The start finishes late: the stream is gone, so that playback is stopped again.
    gate.open();
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while b_rec.playbacks_made.load(Ordering::SeqCst) == 0
        || b_rec.live_playbacks.load(Ordering::SeqCst) > 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the late playback was kept"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b_rec.playback_starts.load(Ordering::SeqCst), 1);
    assert!(b.status().players.is_empty());
    assert!(b_rec.frames.lock().unwrap().is_empty());
    a.destroy().await;
    b.destroy().await;
    srv.stop().await;
}

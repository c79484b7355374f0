//! Two engines in a call through the room logic and the SFU, on simulated time: login,
//! publish, play, frames end to end, stop and publish again, a late joiner's first frame.

mod common;

use std::time::Duration;

use common::callsim::*;
use roomcam::engine::{
    Command, Event, PlayerState, PublisherState, RoomState, RoomStateReason, TrackKind,
};
use roomcam::protocol::UpdateType;

fn publishing(e: &Event, s: &str) -> bool {
    matches!(e, Event::PublisherStateUpdate { stream_id, state: PublisherState::Publishing, .. } if stream_id == s)
}

fn playing(e: &Event, s: &str) -> bool {
    matches!(e, Event::PlayerStateUpdate { stream_id, state: PlayerState::Playing, .. } if stream_id == s)
}

#[test]
fn two_devices_call_and_frames_arrive_in_order_intact() {
    let mut sim = CallSim::new(1);
    let a = sim.add_device("pi-a", 3600);
    let b = sim.add_device("pi-b", 3600);
    sim.login(a, "room1");
    sim.login(b, "room1");
    sim.run(Duration::from_millis(100));
    assert!(
        sim.events(a).iter().any(|e| matches!(
            e,
            Event::RoomStateUpdate {
                state: RoomState::Connected,
                reason: RoomStateReason::Logined,
                ..
            }
        )),
        "{:?}",
        sim.events(a)
    );
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "a-main".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_millis(500));
    assert!(
        sim.events(a).iter().any(|e| publishing(e, "a-main")),
        "{:?}",
        sim.events(a)
    );
    assert!(sim.events(b).iter().any(|e| matches!(e, Event::RoomStreamUpdate { update_type: UpdateType::Add, streams, .. } if streams[0].stream_id == "a-main")));
    sim.command(
        b,
        Command::StartPlaying {
            stream_id: "a-main".into(),
        },
    );
    sim.run(Duration::from_secs(11));
    assert!(
        sim.events(b).iter().any(|e| playing(e, "a-main")),
        "{:?}",
        sim.events(b)
    );

    let frames: Vec<(u32, bool)> = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| {
            read_video_frame(&f.data).unwrap_or_else(|| {
                panic!(
                    "frame damaged: len {} head {:?} tail {:?}",
                    f.data.len(),
                    &f.data[..f.data.len().min(40)],
                    &f.data[f.data.len().saturating_sub(8)..]
                )
            })
        })
        .collect();
    assert!(frames.len() >= 270, "only {} of ~300 frames", frames.len());
    assert!(frames[0].1, "the first frame the player gets is a keyframe");
    for w in frames.windows(2) {
        assert!(
            w[1].0 > w[0].0,
            "frames out of order: {} then {}",
            w[0].0,
            w[1].0
        );
    }
    let audio = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .count();
    assert!(audio >= 450, "only {audio} audio frames in 11 s");
    // RTP timing is the sender's: consecutive video frames are 3000 ticks apart
    let times: Vec<u64> = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| f.rtp_time)
        .collect();
    let steps = times.windows(2).filter(|w| w[1] - w[0] == 3000).count();
    assert!(
        steps * 10 >= times.len() * 9,
        "RTP times do not follow the sender's clock"
    );

    // muting the microphone stops audio and nothing else
    let audio_before = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .count();
    let video_before = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count();
    sim.command(a, Command::MuteMicrophone(true));
    sim.run(Duration::from_secs(1));
    let audio_muted = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .count();
    let video_muted = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count();
    assert!(
        audio_muted - audio_before <= 5,
        "audio went on while muted: {audio_before} -> {audio_muted}"
    );
    assert!(
        video_muted - video_before >= 25,
        "video stopped with the microphone"
    );
    sim.command(a, Command::MuteMicrophone(false));
    sim.command(a, Command::EnableCamera(false));
    sim.run(Duration::from_secs(1));
    let audio_on = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Audio)
        .count();
    let video_off = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .count();
    assert!(audio_on - audio_muted >= 40, "audio did not resume");
    assert!(
        video_off - video_muted <= 2,
        "video went on with the camera off"
    );
    sim.command(a, Command::EnableCamera(true));

    // the SFU tells the publisher what its player can take (REMB), for the encoder
    let rates = &sim.devices[a].bitrates;
    assert!(
        !rates.is_empty(),
        "the publisher never got a target bitrate"
    );
    assert!(rates.iter().all(|r| *r >= 100_000), "{rates:?}");

    // A stops: B's player ends with the stream-gone code, and A can publish again
    sim.command(
        a,
        Command::StopPublishing {
            stream_id: "a-main".into(),
        },
    );
    sim.run(Duration::from_millis(200));
    assert!(
        sim.events(b).iter().any(|e| matches!(
            e,
            Event::PlayerStateUpdate {
                state: PlayerState::NoPlay,
                error_code: 1004001,
                ..
            }
        )),
        "{:?}",
        sim.events(b)
    );
    assert!(sim.events(b).iter().any(|e| matches!(
        e,
        Event::RoomStreamUpdate {
            update_type: UpdateType::Delete,
            ..
        }
    )));
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "a-main".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_millis(500));
    assert_eq!(
        sim.events(a)
            .iter()
            .filter(|e| publishing(e, "a-main"))
            .count(),
        2
    );
}

#[test]
fn a_late_joiner_starts_with_a_keyframe() {
    let mut sim = CallSim::new(2);
    let a = sim.add_device("pi-a", 3600);
    sim.login(a, "room1");
    sim.run(Duration::from_millis(50));
    sim.command(
        a,
        Command::StartPublishing {
            stream_id: "cam".into(),
            extra_info: String::new(),
        },
    );
    sim.run(Duration::from_secs(3));
    let c = sim.add_device("late", 3600);
    sim.login(c, "room1");
    sim.run(Duration::from_millis(50));
    sim.command(
        c,
        Command::StartPlaying {
            stream_id: "cam".into(),
        },
    );
    sim.run(Duration::from_secs(3));
    let frames: Vec<(u32, bool)> = sim.devices[c]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| read_video_frame(&f.data).expect("damaged frame"))
        .collect();
    assert!(frames.len() > 60, "{} frames", frames.len());
    assert!(frames[0].1, "first frame {:?} is not a keyframe", frames[0]);
    assert!(
        frames[0].0 >= 60,
        "the late joiner should start at the latest keyframe, not at {}",
        frames[0].0
    );
}

#[test]
fn five_percent_loss_keeps_video_decoding() {
    let mut sim = CallSim::new(3);
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
    sim.command(
        b,
        Command::StartPlaying {
            stream_id: "cam".into(),
        },
    );
    sim.run(Duration::from_secs(1));
    sim.loss_up = 0.05;
    sim.loss_down = 0.05;
    sim.run(Duration::from_secs(10));
    let frames: Vec<(u32, bool)> = sim.devices[b]
        .frames
        .iter()
        .filter(|f| f.kind == TrackKind::Video)
        .map(|f| read_video_frame(&f.data).expect("a damaged frame was delivered as whole"))
        .collect();
    // ~330 frames were sent; NACK/RTX must recover most of what was lost
    assert!(
        frames.len() >= 280,
        "only {} frames under 5% loss",
        frames.len()
    );
    let last = frames.last().unwrap().0;
    assert!(last >= 300, "video stalled at frame {last}");
}

//! Helpers for the media tests: test-source publish settings, a headless player, and a loop
//! that moves encoded frames from a publisher into a player in process (no network).

use std::time::{Duration, Instant};

use roomcam::media::{
    AudioCapture, AudioPlayback, AudioSettings, DisplaySink, EncodedFrame, EncoderChoice,
    FrameKind, PlayPipeline, PlaySettings, PublishSettings, VideoSettings, VideoSource,
};
use tokio::sync::mpsc::Receiver;

/// The hang guard for every wait in the media tests: generous, never a speed claim.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

pub fn publish_settings(width: u32, height: u32, fps: u32, max_kbps: u32) -> PublishSettings {
    PublishSettings {
        video: VideoSettings {
            source: VideoSource::Test,
            width,
            height,
            fps,
            encoder: EncoderChoice::X264enc,
            max_bitrate_kbps: max_kbps,
        },
        audio: AudioSettings {
            capture: AudioCapture::Test,
            test_tone_hz: 440.0,
            bitrate_bps: 32_000,
            ..AudioSettings::default()
        },
        channel_capacity: 256,
    }
}

pub fn headless_player() -> PlayPipeline {
    let player = PlayPipeline::new(&PlaySettings {
        display: DisplaySink::None,
        playback: AudioPlayback::None,
        playout_delay: Duration::from_millis(40),
    })
    .expect("player builds");
    player.start().expect("player starts");
    player
}

/// Waits for the next encoded frame, up to the hang guard.
pub fn next_frame(rx: &mut Receiver<EncodedFrame>) -> EncodedFrame {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        match rx.try_recv() {
            Ok(f) => return f,
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                panic!("publisher channel closed")
            }
            Err(_) if Instant::now() > deadline => panic!("no encoded frame within {HANG_GUARD:?}"),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Forwards frames into `player` until `video_frames` video frames went by (counting those
/// `skip` rejected too); returns the frames forwarded.
pub fn forward(
    rx: &mut Receiver<EncodedFrame>,
    player: &PlayPipeline,
    video_frames: usize,
    mut skip: impl FnMut(&EncodedFrame) -> bool,
) -> Vec<EncodedFrame> {
    let mut seen = 0;
    let mut forwarded = Vec::new();
    while seen < video_frames {
        let frame = next_frame(rx);
        if frame.kind == FrameKind::Video {
            seen += 1;
        }
        if skip(&frame) {
            continue;
        }
        match frame.kind {
            FrameKind::Video => player.push_video(frame.data.clone(), frame.pts),
            FrameKind::Audio => player.push_audio(frame.data.clone(), frame.pts),
        }
        .expect("push");
        forwarded.push(frame);
    }
    forwarded
}

/// Forwards frames into `player`, as a live call keeps doing, until `done` holds for its stats
/// (up to the hang guard). Unlike `forward` then `wait_for`, a start that loses its first
/// frames on a loaded machine (decoder still starting, pictures late) still gets the frames
/// after them.
pub fn forward_until(
    rx: &mut Receiver<EncodedFrame>,
    player: &PlayPipeline,
    what: &str,
    done: impl Fn(&roomcam::media::PlayStats) -> bool,
) {
    until(player, &format!("forwarding until {what}"), done, || {
        forward(rx, player, 1, |_| false);
    });
}

/// Waits (up to the hang guard) until `done` holds for the player's stats.
pub fn wait_for(
    player: &PlayPipeline,
    what: &str,
    done: impl Fn(&roomcam::media::PlayStats) -> bool,
) {
    until(player, &format!("waiting for {what}"), done, || {
        std::thread::sleep(Duration::from_millis(10))
    });
}

/// Runs `step` until `done` holds for the player's stats; past the hang guard, fails saying
/// what it was `doing` and the stats.
fn until(
    player: &PlayPipeline,
    doing: &str,
    done: impl Fn(&roomcam::media::PlayStats) -> bool,
    mut step: impl FnMut(),
) {
    let deadline = Instant::now() + HANG_GUARD;
    while !done(&player.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out {doing}: {:?}",
            player.stats()
        );
        step();
    }
}

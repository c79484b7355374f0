//! The speaker mixes every played stream into one output: two publishers with different test
//! tones, played through the session's speaker, are both heard; a stream that stops playing
//! leaves the mix without disturbing the other; with no one left, the mix goes on as silence.

mod common;

use std::time::{Duration, Instant};

use common::audio::{self, RATE};
use common::media::HANG_GUARD;
use roomcam::media::tone::block_level_db;
use roomcam::media::{
    AudioCapture, AudioPlayback, AudioSettings, DisplaySink, EncodedFrame, FrameKind, PlayPipeline,
    PlaySettings, PublishPipeline, Speaker,
};
use tokio::sync::mpsc::Receiver;

const A_HZ: f64 = 500.0;
const B_HZ: f64 = 1_300.0;
/// A frequency nobody sends.
const NONE_HZ: f64 = 2_100.0;

fn publisher(hz: f64) -> (PublishPipeline, Receiver<EncodedFrame>) {
    let (p, rx) = PublishPipeline::new(&audio::publish_settings(AudioSettings {
        capture: AudioCapture::Test,
        test_tone_hz: hz,
        ..AudioSettings::default()
    }))
    .expect("publisher builds");
    p.start().expect("publisher starts");
    (p, rx)
}

fn player(speaker: &Speaker) -> PlayPipeline {
    let p = PlayPipeline::with_speaker(
        &PlaySettings {
            display: DisplaySink::None,
            // Not this stream's business with a speaker: the speaker's output counts.
            playback: AudioPlayback::Alsa("hw:97,0".into()),
            playout_delay: Duration::from_millis(40),
        },
        speaker,
    )
    .expect("player builds");
    p.start().expect("player starts");
    p
}

/// Moves frames from each publisher to its player for `how_long`.
fn relay(pairs: &mut [(&mut Receiver<EncodedFrame>, &PlayPipeline)], how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        for (rx, player) in pairs.iter_mut() {
            while let Ok(f) = rx.try_recv() {
                let r = match f.kind {
                    FrameKind::Video => player.push_video(f.data, f.pts),
                    FrameKind::Audio => player.push_audio(f.data, f.pts),
                };
                r.expect("push");
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn levels(speaker: &Speaker) -> (f64, f64, f64) {
    let s = speaker.recent_samples();
    assert!(s.len() >= RATE as usize / 4, "{} samples", s.len());
    (
        // Per 20 ms block: one late buffer under CPU load must not cancel a tone's level.
        block_level_db(&s, RATE, A_HZ, 960),
        block_level_db(&s, RATE, B_HZ, 960),
        block_level_db(&s, RATE, NONE_HZ, 960),
    )
}

#[test]
fn two_streams_are_mixed_and_leave_the_mix_one_by_one() {
    roomcam::media::init().expect("gstreamer");
    let speaker = Speaker::start(&AudioPlayback::None).expect("speaker starts");

    // Nobody plays yet: the mix runs, silent.
    std::thread::sleep(Duration::from_millis(800));
    let (a, b, n) = levels(&speaker);
    assert!(a < -90.0 && b < -90.0 && n < -90.0, "{a} {b} {n}");
    let before = speaker.stats().buffers;
    assert!(before > 0);

    let (pa, mut rxa) = publisher(A_HZ);
    let (pb, mut rxb) = publisher(B_HZ);
    let play_a = player(&speaker);
    let play_b = player(&speaker);
    assert_eq!(speaker.stats().inputs, 2);
    relay(
        &mut [(&mut rxa, &play_a), (&mut rxb, &play_b)],
        Duration::from_secs(3),
    );
    let (a, b, n) = levels(&speaker);
    eprintln!("both: {a:.1} {b:.1} {n:.1} dB");
    // The test tones are sent at 0.3 (-10.5 dBFS); both are in the mix, nothing else is.
    assert!(a > -25.0 && b > -25.0, "{a} {b}");
    assert!(n < a - 30.0 && n < b - 30.0, "{n}");
    // Each player still measures its own stream.
    let tone_a = play_a.stats().audio_tone_hz.expect("tone a");
    assert!((tone_a - A_HZ).abs() < A_HZ * 0.02, "{tone_a}");

    // A stops playing: B goes on, alone.
    play_a.stop();
    drop(play_a);
    assert_eq!(speaker.stats().inputs, 1);
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        relay(&mut [(&mut rxb, &play_b)], Duration::from_millis(700));
        let (a, b, _) = levels(&speaker);
        if a < -60.0 && b > -25.0 {
            break;
        }
        assert!(Instant::now() < deadline, "after A left: {a} {b}");
    }
    let tone = speaker.stats().tone_hz.expect("a clear tone");
    assert!((tone - B_HZ).abs() < B_HZ * 0.02, "{tone}");

    // B stops too: silence, and the mix (and its echo probe) keeps running.
    play_b.stop();
    drop(play_b);
    std::thread::sleep(Duration::from_millis(800));
    let (a, b, _) = levels(&speaker);
    assert!(a < -60.0 && b < -60.0, "{a} {b}");
    let s = speaker.stats();
    assert_eq!(s.inputs, 0);
    assert!(s.buffers > before + 100, "{s:?}");
    assert!(speaker.error().is_none(), "{:?}", speaker.error());
    drop((pa, pb));
}

//! Hot-plug without hardware. The microphone: a feed that is unplugged while publishing (its
//! capture fails as a removed USB card's does) turns the published audio into silence, and when
//! it is plugged back the publisher resumes it by itself, in the same process and stream. The
//! speaker: an output that vanishes (an `AudioTap`) leaves the mix running and comes back by
//! itself; an ALSA output that is not there leaves the mix running on its fallback.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::audio::{self, CHUNK, RATE, Sine};
use common::media::HANG_GUARD;
use roomcam::media::tone::block_level_db;
use roomcam::media::{
    AudioCapture, AudioFeed, AudioPlayback, AudioSettings, AudioTap, EncodedFrame, PublishPipeline,
    Speaker,
};
use tokio::sync::mpsc::Receiver;

const MIC_HZ: f64 = 900.0;

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < HANG_GUARD, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn collect(rx: &mut Receiver<EncodedFrame>, frames: &mut Vec<EncodedFrame>, how_long: Duration) {
    let end = Instant::now() + how_long;
    while Instant::now() < end {
        audio::drain_audio(rx, frames);
        std::thread::sleep(Duration::from_millis(10));
    }
    audio::drain_audio(rx, frames);
}

/// The tone's level in the decoded audio of frames `from..to` (20 ms each).
fn tone_db(pcm: &[f32], from: usize, to: usize) -> f64 {
    let (a, b) = (from * 960, (to * 960).min(pcm.len()));
    assert!(
        b > a + 9_600,
        "segment {from}..{to} of {} samples",
        pcm.len()
    );
    block_level_db(&pcm[a..b], RATE, MIC_HZ, 960)
}

#[test]
fn an_unplugged_microphone_becomes_silence_and_comes_back() {
    roomcam::media::init().expect("gstreamer");
    let feed = AudioFeed::new();
    let (publisher, mut rx) = PublishPipeline::new(&audio::publish_settings(AudioSettings {
        capture: AudioCapture::Feed(feed.clone()),
        ..AudioSettings::default()
    }))
    .expect("publisher builds");
    publisher.start().expect("publisher starts");

    // The "room": a steady tone into the microphone, whenever it is open.
    let stop = Arc::new(AtomicBool::new(false));
    let talker = {
        let (feed, stop) = (feed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut tone = Sine::new(MIC_HZ, 0.3);
            audio::paced(Duration::from_secs(120), |_| {
                if !stop.load(Ordering::Relaxed) {
                    feed.push(&audio::to_s16(&tone.next_chunk(CHUNK)));
                }
            });
        })
    };

    let mut frames = Vec::new();
    wait_until("the microphone to open", || {
        publisher.stats().mic_on_device == Some(true)
    });
    collect(&mut rx, &mut frames, Duration::from_secs(2));
    let speaking = frames.len();

    feed.unplug();
    wait_until("the loss to be noticed", || {
        publisher.stats().mic_on_device == Some(false)
    });
    let lost_at = frames.len();
    collect(&mut rx, &mut frames, Duration::from_secs(2));
    let silent = frames.len();
    // Still publishing while the microphone is away: one 20 ms packet after another.
    assert!(silent - lost_at > 50, "{} packets in 2 s", silent - lost_at);

    feed.plug();
    let back_after = wait_until("the microphone to be reopened", || {
        publisher.stats().mic_on_device == Some(true)
    });
    eprintln!("reopened {back_after:?} after plugging back in");
    let back_at = frames.len();
    collect(&mut rx, &mut frames, Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);

    let stats = publisher.stats();
    assert_eq!(stats.mic_lost, 1, "{stats:?}");
    assert!(publisher.error().is_none(), "{:?}", publisher.error());
    publisher.stop();
    drop(talker);

    let pcm = audio::decode_opus(&frames);
    let before = tone_db(&pcm, speaking / 2, speaking);
    // Skip the moment of the switch (the mixer's latency, the encoder's look-ahead).
    let away = tone_db(&pcm, lost_at + 10, silent);
    let after = tone_db(&pcm, back_at + 25, frames.len());
    eprintln!("tone: {before:.1} dB, unplugged {away:.1} dB, plugged back {after:.1} dB");
    assert!(before > -20.0, "{before}");
    assert!(away < -60.0, "{away}");
    assert!(after > -20.0, "{after}");
}

/// A speaker whose ALSA device is not there (no card 29 on any test machine): the mix, its
/// echo probe and its inputs run on, the output stays on the fallback and keeps being retried.
#[test]
fn a_missing_speaker_leaves_the_mix_running() {
    roomcam::media::init().expect("gstreamer");
    let speaker = Speaker::start(&AudioPlayback::Alsa("hw:29,0".into())).expect("starts");
    let input = speaker.add_input().expect("input");
    let mut tone = Sine::new(700.0, 0.3);
    audio::paced(Duration::from_secs(2), |_| {
        input.push_pcm(&audio::to_bytes(&audio::to_s16(&tone.next_chunk(CHUNK))));
    });
    let s = speaker.stats();
    assert!(!s.on_device && s.output_opened == 0, "{s:?}");
    assert_eq!(s.output, "hw:29,0");
    assert!(s.buffers > 100, "{s:?}");
    let hz = s.tone_hz.expect("the tone is in the mix");
    assert!((hz - 700.0).abs() < 14.0, "{hz}");
    assert!(speaker.error().is_none(), "{:?}", speaker.error());
}

/// A speaker output that vanishes while playing (an `AudioTap`: the speaker's output pipeline
/// fails as a removed USB speaker's does) and comes back: the mix goes on meanwhile, and the
/// output resumes by itself, playing the tone again.
#[test]
fn an_unplugged_speaker_comes_back_by_itself() {
    roomcam::media::init().expect("gstreamer");
    let tap = AudioTap::new();
    let speaker = Speaker::start_with_tap(&tap).expect("starts");
    let input = speaker.add_input().expect("input");
    let mut tone = Sine::new(700.0, 0.3);
    let mut play = |ms: u64| {
        audio::paced(Duration::from_millis(ms), |_| {
            input.push_pcm(&audio::to_bytes(&audio::to_s16(&tone.next_chunk(CHUNK))));
        })
    };
    // Per 20 ms block: a glitch under CPU load (one late buffer) must not hide the tone.
    let heard = |tap: &AudioTap| block_level_db(&tap.recent_samples(), RATE, 700.0, 960);
    play(1500);
    assert!(speaker.stats().on_device, "{:?}", speaker.stats());
    assert!(heard(&tap) > -20.0, "{}", heard(&tap));

    tap.unplug();
    let start = Instant::now();
    while speaker.stats().on_device {
        assert!(start.elapsed() < HANG_GUARD, "{:?}", speaker.stats());
        play(50);
    }
    let mixed = speaker.stats().buffers;
    let played = tap.buffers();
    play(1500);
    // Away: the mix goes on, nothing reaches the tap.
    assert!(
        speaker.stats().buffers > mixed + 100,
        "{:?}",
        speaker.stats()
    );
    assert_eq!(tap.buffers(), played);
    assert!(!speaker.stats().on_device);

    tap.plug();
    let start = Instant::now();
    while !speaker.stats().on_device {
        assert!(start.elapsed() < HANG_GUARD, "{:?}", speaker.stats());
        play(50);
    }
    eprintln!(
        "speaker reopened {:?} after plugging back in",
        start.elapsed()
    );
    play(1000);
    assert!(tap.buffers() > played + 50, "{}", tap.buffers());
    assert!(heard(&tap) > -20.0, "{}", heard(&tap));
    let s = speaker.stats();
    assert_eq!((s.output_opened, s.output_lost), (2, 1), "{s:?}");
}

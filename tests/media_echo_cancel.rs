//! Echo cancellation without hardware: a known far-end tone goes into the speaker's mix (and so
//! through its echo probe), and a delayed, attenuated copy of it plus a near-end tone go into the
//! microphone path. The published audio, decoded, must carry the echo at least 20 dB weaker than
//! in the same run with `echo_cancel = false`, while the near-end tone passes.

mod common;

use std::collections::VecDeque;
use std::time::Duration;

use common::audio::{self, CHUNK, RATE, Sine};
use roomcam::media::{
    AudioCapture, AudioFeed, AudioPlayback, AudioSettings, PublishPipeline, Speaker,
};

const FAR_HZ: f64 = 600.0;
const NEAR_HZ: f64 = 1_700.0;
/// The room: the microphone hears the speaker 120 ms later at half the level.
const ECHO_DELAY_CHUNKS: usize = 12;
const ECHO_GAIN: f64 = 0.5;
const RUN: Duration = Duration::from_secs(10);
/// Measured over the last seconds, after the canceller found the delay.
const MEASURE: Duration = Duration::from_secs(3);

struct Levels {
    echo_db: f64,
    near_db: f64,
}

fn run(echo_cancel: bool) -> Levels {
    roomcam::media::init().expect("gstreamer");
    let speaker = Speaker::start(&AudioPlayback::None).expect("speaker starts");
    let far_input = speaker.add_input().expect("speaker input");
    let feed = AudioFeed::new();
    let settings = audio::publish_settings(AudioSettings {
        capture: AudioCapture::Feed(feed.clone()),
        echo_cancel,
        // Only the canceller differs between the two runs.
        noise_suppression: false,
        gain_control: false,
        echo_probe: Some(speaker.probe_name().to_string()),
        ..AudioSettings::default()
    });
    let (publisher, mut rx) = PublishPipeline::new(&settings).expect("publisher builds");
    publisher.start().expect("publisher starts");

    let mut far = Sine::new(FAR_HZ, 0.4);
    let mut near = Sine::new(NEAR_HZ, 0.1);
    let mut room: VecDeque<Vec<f64>> = VecDeque::new();
    let mut frames = Vec::new();
    audio::paced(RUN, |_| {
        let chunk = far.next_chunk(CHUNK);
        far_input.push_pcm(&audio::to_bytes(&audio::to_s16(&chunk)));
        room.push_back(chunk);
        let echo = if room.len() > ECHO_DELAY_CHUNKS {
            room.pop_front().unwrap_or_default()
        } else {
            vec![0.0; CHUNK]
        };
        let mic: Vec<f64> = echo
            .iter()
            .zip(near.next_chunk(CHUNK))
            .map(|(e, n)| e * ECHO_GAIN + n)
            .collect();
        feed.push(&audio::to_s16(&mic));
        audio::drain_audio(&mut rx, &mut frames);
    });
    std::thread::sleep(Duration::from_millis(200));
    audio::drain_audio(&mut rx, &mut frames);
    assert!(publisher.error().is_none(), "{:?}", publisher.error());
    assert_eq!(publisher.stats().mic_on_device, Some(true));
    publisher.stop();

    let pcm = audio::decode_opus(&frames);
    let n = (MEASURE.as_secs_f64() * f64::from(RATE)) as usize;
    assert!(
        pcm.len() > n * 2,
        "published {} samples in {RUN:?}",
        pcm.len()
    );
    let tail = &pcm[pcm.len() - n..];
    Levels {
        echo_db: roomcam::media::tone::level_db(tail, RATE, FAR_HZ),
        near_db: roomcam::media::tone::level_db(tail, RATE, NEAR_HZ),
    }
}

#[test]
fn the_echo_is_cancelled_and_near_end_speech_passes() {
    let off = run(false);
    let on = run(true);
    eprintln!(
        "echo: {:.1} dB -> {:.1} dB; near end: {:.1} dB -> {:.1} dB",
        off.echo_db, on.echo_db, off.near_db, on.near_db
    );
    // Without the canceller the echo is there, at about its level in the room (-14 dBFS).
    assert!(
        off.echo_db > -20.0,
        "echo without cancelling: {:.1} dB",
        off.echo_db
    );
    assert!(
        off.echo_db - on.echo_db >= 20.0,
        "echo reduced by only {:.1} dB",
        off.echo_db - on.echo_db
    );
    // The near-end tone (-20 dBFS) passes: within 6 dB of the uncancelled run.
    assert!(
        off.near_db > -26.0,
        "near end without cancelling: {:.1} dB",
        off.near_db
    );
    assert!(
        (off.near_db - on.near_db).abs() <= 6.0,
        "near end {:.1} dB -> {:.1} dB",
        off.near_db,
        on.near_db
    );
}

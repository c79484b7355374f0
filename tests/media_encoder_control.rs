//! The encoder follows a new bitrate without a restart, and a keyframe request is answered
//! within a few frames.

mod common;

use std::time::{Duration, Instant};

use common::media::{next_frame, publish_settings};
use roomcam::media::{EncodedFrame, FrameKind, PublishPipeline};
use tokio::sync::mpsc::Receiver;

/// Video bytes per second over `span` of pts.
fn video_rate(rx: &mut Receiver<EncodedFrame>, span: Duration) -> f64 {
    let first = loop {
        let f = next_frame(rx);
        if f.kind == FrameKind::Video {
            break f;
        }
    };
    let mut bytes = 0usize;
    loop {
        let f = next_frame(rx);
        if f.kind != FrameKind::Video {
            continue;
        }
        if f.pts - first.pts >= span {
            return bytes as f64 / (f.pts - first.pts).as_secs_f64();
        }
        bytes += f.data.len();
    }
}

fn skip_video(rx: &mut Receiver<EncodedFrame>, n: usize) {
    let mut seen = 0;
    while seen < n {
        if next_frame(rx).kind == FrameKind::Video {
            seen += 1;
        }
    }
}

#[test]
fn bitrate_changes_at_runtime_without_restart() {
    let (publisher, mut rx) =
        PublishPipeline::new(&publish_settings(640, 480, 30, 3000)).expect("builds");
    publisher.start().expect("starts");
    assert_eq!(publisher.set_bitrate_kbps(3000), 3000);
    skip_video(&mut rx, 15);
    let high = video_rate(&mut rx, Duration::from_millis(1500));

    assert_eq!(publisher.set_bitrate_kbps(200), 200);
    skip_video(&mut rx, 15);
    let low = video_rate(&mut rx, Duration::from_millis(1500));

    // Clamping: below the floor and above the maximum.
    assert_eq!(publisher.set_bitrate_kbps(10), 150);
    assert_eq!(publisher.set_bitrate_kbps(100_000), 3000);
    println!(
        "high {:.0} kbps, low {:.0} kbps",
        high * 8.0 / 1000.0,
        low * 8.0 / 1000.0
    );
    assert!(
        low * 2.0 < high,
        "low {low} B/s is not well below high {high} B/s"
    );
    assert!(
        low * 8.0 / 1000.0 < 200.0 * 2.0,
        "low {:.0} kbps, asked for 200",
        low * 8.0 / 1000.0
    );
    // Same pipeline, still running, no error.
    assert!(publisher.error().is_none());
    assert_eq!(publisher.stats().bitrate_kbps, 3000);
}

#[test]
fn a_keyframe_request_is_answered_within_a_few_frames() {
    let (publisher, mut rx) =
        PublishPipeline::new(&publish_settings(640, 480, 30, 800)).expect("builds");
    publisher.start().expect("starts");
    // Past the first keyframe, well before the periodic one (every 2 s = 60 frames).
    let mut video = 0;
    while video < 10 {
        if next_frame(&mut rx).kind == FrameKind::Video {
            video += 1;
        }
    }
    let keyframes_before = publisher.stats().keyframes_sent;
    let asked = Instant::now();
    publisher.request_keyframe();
    let mut after = 0;
    let keyframe = loop {
        let f = next_frame(&mut rx);
        if f.kind != FrameKind::Video {
            continue;
        }
        after += 1;
        if f.keyframe {
            break f;
        }
        assert!(after < 20, "no keyframe within 20 frames of the request");
    };
    println!(
        "keyframe {after} frames ({:?}) after the request",
        asked.elapsed()
    );
    assert!(after <= 5, "keyframe only {after} frames after the request");
    assert!(roomcam::media::h264::contains_idr(&keyframe.data));
    // Every keyframe carries SPS and PPS in front (config-interval=-1).
    let types: Vec<u8> = roomcam::media::h264::nal_units(&keyframe.data)
        .filter_map(roomcam::media::h264::nal_type)
        .collect();
    assert!(
        types.contains(&7) && types.contains(&8),
        "NAL types {types:?}"
    );
    assert_eq!(publisher.stats().keyframes_sent, keyframes_before + 1);
}

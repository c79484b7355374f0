//! Camera hot-plug in the publisher: the source disappears (a live `appsrc` that stops
//! delivering and then ends), opening it fails for a while (the device is gone), and then it
//! comes back. The publisher switches to the "Camera unavailable" card by itself, keeps
//! publishing frames throughout, reopens the source every second and switches back to the
//! camera, starting with a keyframe, without a restart. A real player decodes the whole stream.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use common::media::headless_player;
use roomcam::media::{
    AudioCapture, EncoderChoice, FrameKind, MediaError, PublishPipeline, PublishSettings,
    SourceOpener, VideoSettings, VideoSource,
};

const W: u32 = 320;
const H: u32 = 240;

/// A camera made of a live appsrc fed by a thread while `present` is true; once unplugged the
/// feeding stops and the source ends (EOS), and opening it again fails until it is plugged back.
struct FakeDevice {
    present: Arc<AtomicBool>,
    opens: Arc<AtomicU32>,
    feeders: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl FakeDevice {
    fn opener(self: &Arc<Self>) -> SourceOpener {
        let dev = self.clone();
        Arc::new(move || {
            dev.opens.fetch_add(1, Ordering::Relaxed);
            if !dev.present.load(Ordering::Relaxed) {
                return Err(MediaError::Device("test camera: no such device".into()));
            }
            let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, W, H)
                .fps(gst::Fraction::new(30, 1))
                .build()
                .expect("info");
            let src = gst_app::AppSrc::builder()
                .is_live(true)
                .format(gst::Format::Time)
                .do_timestamp(true)
                .caps(&info.to_caps().expect("caps"))
                .build();
            let present = dev.present.clone();
            let feed = src.clone();
            let t = std::thread::spawn(move || {
                let size = info.size();
                while present.load(Ordering::Relaxed) {
                    // Mid-grey pictures: unlike the card (dark with white text).
                    let mut data = vec![128u8; size];
                    data[..(W * H) as usize].fill(180);
                    if feed.push_buffer(gst::Buffer::from_mut_slice(data)).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(33));
                }
                let _ = feed.end_of_stream();
            });
            if let Ok(mut f) = dev.feeders.lock() {
                f.push(t);
            }
            Ok(src.upcast())
        })
    }
}

fn wait(what: &str, publisher: &PublishPipeline, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; stats {:?}",
            publisher.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_publisher_shows_the_card_while_the_camera_is_gone_and_resumes_by_itself() {
    let device = Arc::new(FakeDevice {
        present: Arc::new(AtomicBool::new(true)),
        opens: Arc::new(AtomicU32::new(0)),
        feeders: Mutex::new(Vec::new()),
    });
    let settings = PublishSettings {
        video: VideoSettings {
            source: VideoSource::Auto,
            encoder: EncoderChoice::X264enc,
            width: W,
            height: H,
            fps: 30,
            max_bitrate_kbps: 600,
        },
        audio: roomcam::media::AudioSettings {
            capture: AudioCapture::None,
            ..Default::default()
        },
        channel_capacity: 256,
    };
    let (publisher, mut rx) =
        PublishPipeline::with_video_source(&settings, device.opener(), "test camera")
            .expect("builds");
    publisher.start().expect("starts");
    let publisher = Arc::new(publisher);
    let player = Arc::new(headless_player());

    // Everything published goes to a real decoder, in order, all the way through.
    let sent = Arc::new(Mutex::new(Vec::<(Duration, bool)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let forward = {
        let (player, sent, stop) = (player.clone(), sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("rt");
            rt.block_on(async move {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(Some(f)) =
                        tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
                    else {
                        continue;
                    };
                    if f.kind == FrameKind::Video {
                        sent.lock().unwrap().push((f.pts, f.keyframe));
                        let _ = player.push_video(f.data, f.pts);
                    }
                }
            });
        })
    };

    wait("camera frames", &publisher, || {
        publisher.stats().video_frames_sent > 30
    });
    assert!(!publisher.stats().showing_card);

    // Unplug: the card within a few seconds, frames keep going out.
    device.present.store(false, Ordering::Relaxed);
    wait("the card", &publisher, || publisher.stats().showing_card);
    let at_loss = publisher.stats();
    assert_eq!(at_loss.camera_losses, 1);
    let opens_at_loss = device.opens.load(Ordering::Relaxed);
    wait("card frames published", &publisher, || {
        let s = publisher.stats();
        s.card_frames > 45 && s.video_frames_sent > at_loss.video_frames_sent + 45
    });
    // It keeps looking for the camera (about once a second), and opening fails.
    wait("reopen attempts", &publisher, || {
        device.opens.load(Ordering::Relaxed) >= opens_at_loss + 2
    });
    assert!(publisher.stats().showing_card);
    assert!(publisher.error().is_none(), "{:?}", publisher.error());

    // Plug back: camera pictures again, starting with a keyframe, no restart.
    let keyframes_before = publisher.stats().keyframes_sent;
    let sent_before = sent.lock().unwrap().len();
    let back = Instant::now();
    device.present.store(true, Ordering::Relaxed);
    wait("the camera again", &publisher, || {
        !publisher.stats().showing_card
    });
    // Generous hang guard; the 5 s is for the real device in QEMU.
    assert!(back.elapsed() < Duration::from_secs(20));
    wait("a keyframe after switching back", &publisher, || {
        publisher.stats().keyframes_sent > keyframes_before
    });
    let after = publisher.stats();
    assert_eq!(after.camera_losses, 1);
    wait("camera frames after the return", &publisher, || {
        publisher.stats().video_frames_sent > after.video_frames_sent + 30
    });
    assert!(
        sent.lock().unwrap()[sent_before..].iter().any(|(_, k)| *k),
        "a keyframe follows the switch back"
    );

    // The player decoded through the loss and the return: every published frame's pts rises.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    forward.join().expect("forwarder");
    let frames = sent.lock().unwrap().clone();
    assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "pts rise");
    let decoded = player.stats().video_frames_decoded;
    assert!(
        decoded * 100 >= frames.len() as u64 * 80,
        "decoded {decoded} of {} frames",
        frames.len()
    );
    assert!(publisher.error().is_none(), "{:?}", publisher.error());
    publisher.stop();
}

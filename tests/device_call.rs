//! Two devices and a room service on loopback, with real GStreamer pipelines on test sources:
//! the player decodes the publisher's numbered pictures in order at the published size, hears
//! its tone, keeps audio and video together, sees the stream go when the publisher stops, plays
//! it again when it comes back, and a late joiner starts on a keyframe.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::server::*;
use roomcam::appliance::config::DeviceConfig;
use roomcam::appliance::device;
use roomcam::appliance::gst_backend::{GstBackend, GstHandle, settings_from};
use roomcam::media::PlayStats;

struct Dev {
    stop: tokio::sync::mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    media: GstHandle,
    status: std::net::SocketAddr,
}

async fn start(srv: &TestServer, user: &str, width: u32, height: u32) -> Dev {
    let text = format!(
        "[server]\nurl = \"{}\"\n[identity]\napp_id = {APP}\nuser_id = \"{user}\"\ntoken = \"{}\"\n[room]\nid = \"room1\"\n\
         [video]\nsource = \"test\"\nwidth = {width}\nheight = {height}\nfps = 30\nencoder = \"x264enc\"\nmax_bitrate_kbps = 1500\n\
         [audio]\ncapture = \"test\"\nplayback = \"none\"\necho_cancel = false\n[display]\nsink = \"none\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
        srv.ws_url(),
        token(user, None, all(), 3600)
    );
    let cfg = DeviceConfig::parse(&text, Path::new("test-device.toml")).unwrap();
    let (publish, mut play) = settings_from(&cfg).unwrap();
    // This test is about what arrives, not how fast: a generous jitter allowance keeps a busy
    // CI machine's late pictures from being dropped (latency is measured in BENCHMARKS.md).
    play.playout_delay = Duration::from_millis(150);
    let backend = GstBackend::new(publish, play).unwrap();
    let media = backend.handle();
    let stats = backend.stats_reader();
    let (stop, rx) = device::shutdown_channel();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        device::run(cfg, Box::new(backend), Arc::clone(&stats), rx, move |a| {
            let _ = addr_tx.send(a);
        })
        .await
        .expect("device run");
    });
    let status = tokio::time::timeout(HANG_GUARD, addr_rx)
        .await
        .unwrap()
        .unwrap();
    Dev {
        stop,
        task,
        media,
        status,
    }
}

impl Dev {
    async fn stop(self) {
        let _ = self.stop.send(()).await;
        tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("device did not stop")
            .unwrap();
    }

    async fn status(&self) -> serde_json::Value {
        let (code, body) = http_get(self.status, "/status").await;
        assert_eq!(code, 200);
        serde_json::from_str(&body).unwrap()
    }

    /// Waits (hang guard 60 s) until the player of `stream` has decoded `n` pictures.
    async fn decoded(&self, stream: &str, n: u64) -> PlayStats {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(p) = self.media.player(stream) {
                let s = p.stats();
                if s.video_frames_decoded >= n {
                    return s;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{stream}: fewer than {n} pictures decoded: {:?}",
                self.media.player(stream).map(|p| p.stats())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_devices_in_a_call_with_gstreamer() {
    let srv = TestServer::default().await;
    let a = start(&srv, "dev-a", 640, 480).await;
    let b = start(&srv, "dev-b", 320, 240).await;

    let s = b.decoded("dev-a-main", 300).await;
    assert_eq!((s.width, s.height), (640, 480), "published size");
    assert_eq!(s.first_frame_was_keyframe, Some(true));
    assert_eq!(s.frames_out_of_order, 0, "{s:?}");
    // at least 90% of the pictures: the numbered stamps show how many were skipped
    assert!(s.frames_skipped * 10 <= s.video_frames_decoded, "{s:?}");
    assert!(
        s.unstamped_frames * 20 <= s.stamped_frames,
        "unreadable (corrupt) pictures: {s:?}"
    );
    let hz = s.audio_tone_hz.expect("no tone measured");
    assert!((hz - 440.0).abs() < 440.0 * 0.02, "tone {hz} Hz, want 440");
    let av = s.av_offset_ms.expect("no A/V offset measured");
    assert!(av.abs() <= 80.0, "audio/video offset {av} ms");
    // the status endpoint reports real counters
    let st = b.status().await;
    let p = st["players"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stream_id"] == "dev-a-main")
        .expect("player in status")
        .clone();
    assert_eq!(p["state"], "PLAYING");
    assert!(p["video_frames_decoded"].as_u64().unwrap() >= 300);
    assert_eq!(p["width"], 640);
    let sa = a.status().await;
    assert_eq!(sa["publisher"]["state"], "PUBLISHING");
    assert_eq!(sa["publisher"]["encoder"], "x264enc");
    // the status view refreshes every 100 ms: allow for a few frames not yet counted
    assert!(sa["publisher"]["video_frames_sent"].as_u64().unwrap() >= 250);

    // A stops: B sees the stream go
    a.stop().await;
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let st = b.status().await;
        if !st["players"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["stream_id"] == "dev-a-main")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B still plays A after A left: {st}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A comes back and publishes again; B plays it again
    let a = start(&srv, "dev-a", 640, 480).await;
    b.decoded("dev-a-main", 30).await;
    // a late joiner starts on a keyframe, with nothing corrupt before it
    let c = start(&srv, "dev-c", 320, 240).await;
    let s = c.decoded("dev-a-main", 30).await;
    // No corrupt picture: every decoded picture carries a readable stamp. (That the first one
    // is a keyframe is checked where it is decided: tests/media_late_joiner.rs for the player,
    // tests/engine_call.rs for what the SFU delivers.)
    assert_eq!(s.unstamped_frames, 0, "{s:?}");
    assert_eq!(s.frames_out_of_order, 0, "{s:?}");
    c.stop().await;
    b.stop().await;
    a.stop().await;
    srv.stop().await;
}

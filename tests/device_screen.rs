//! A device with a screen (the `none` output, read back) in a room: alone, its idle card says
//! "Waiting in room1"; when another device publishes, that participant is composed on the
//! screen (the card goes); when it leaves, the card comes back. The status endpoint says whether
//! the camera card is published.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::server::*;
use roomcam::appliance::config::DeviceConfig;
use roomcam::appliance::device;
use roomcam::appliance::gst_backend::{GstBackend, settings_from};
use roomcam::media::{DisplaySink, Screen, ScreenSettings};

struct Dev {
    stop: tokio::sync::mpsc::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    status: std::net::SocketAddr,
}

fn config(srv: &TestServer, user: &str) -> DeviceConfig {
    let text = format!(
        "[server]\nurl = \"{}\"\n[identity]\napp_id = {APP}\nuser_id = \"{user}\"\ntoken = \"{}\"\n[room]\nid = \"room1\"\n\
         [video]\nsource = \"test\"\nwidth = 320\nheight = 240\nfps = 15\nencoder = \"x264enc\"\nmax_bitrate_kbps = 500\n\
         [audio]\ncapture = \"test\"\nplayback = \"none\"\necho_cancel = false\n[display]\nsink = \"none\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
        srv.ws_url(),
        token(user, None, all(), 3600)
    );
    DeviceConfig::parse(&text, Path::new("test-device.toml")).unwrap()
}

async fn start(srv: &TestServer, user: &str, screen: Option<Screen>) -> Dev {
    let cfg = config(srv, user);
    let (publish, mut play) = settings_from(&cfg).unwrap();
    play.playout_delay = Duration::from_millis(150);
    let backend = GstBackend::new(publish, play).unwrap();
    if let Some(s) = &screen {
        backend.attach_screen(s.clone(), false);
    }
    let stats = backend.stats_reader();
    let (stop, rx) = device::shutdown_channel();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        device::run_with_screen(
            cfg,
            Box::new(backend),
            Arc::clone(&stats),
            screen,
            rx,
            std::future::pending(),
            move |a| {
                let _ = addr_tx.send(a);
            },
        )
        .await
        .expect("device run");
    });
    let status = tokio::time::timeout(HANG_GUARD, addr_rx)
        .await
        .unwrap()
        .unwrap();
    Dev { stop, task, status }
}

impl Dev {
    async fn stop(self) {
        let _ = self.stop.send(()).await;
        tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("device did not stop")
            .unwrap();
    }
}

async fn until(what: &str, screen: &Screen, ok: impl Fn(&roomcam::media::ScreenStats) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let s = screen.stats();
        if ok(&s) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_card_follows_the_room_and_participants_replace_it() {
    let srv = TestServer::default().await;
    roomcam::media::init().unwrap();
    let screen = Screen::start(
        &ScreenSettings {
            sink: DisplaySink::None,
            width: 320,
            height: 180,
            fps: 15,
            ..ScreenSettings::default()
        },
        "Connecting…",
    )
    .unwrap();
    let a = start(&srv, "dev-a", Some(screen.clone())).await;
    until("the card to say we wait", &screen, |s| {
        s.idle_text == "Waiting in room1" && s.shown == 0
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let st = loop {
        let (code, body) = http_get(a.status, "/status").await;
        assert_eq!(code, 200);
        let st: serde_json::Value = serde_json::from_str(&body).unwrap();
        if st["publisher"]["state"] == "PUBLISHING" {
            break st;
        }
        assert!(tokio::time::Instant::now() < deadline, "not publishing: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(st["publisher"]["camera_unavailable"], false, "{st}");
    assert_eq!(st["screen"]["sink"], "none", "{st}");
    assert_eq!(st["screen"]["idle_text"], "Waiting in room1", "{st}");
    assert_eq!(st["screen"]["shown"], 0, "{st}");

    let b = start(&srv, "dev-b", None).await;
    until("dev-b on the screen", &screen, |s| s.shown == 1).await;
    // The composed picture is dev-b's test pattern now, not the card: SMPTE bars have a
    // saturated colour somewhere along the top row; the card is a grey-blue.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(snap) = screen.snapshot() {
            let saturated = (0..snap.width).step_by(8).any(|x| {
                let (r, g, b) = snap.rgb(x, snap.height / 4).unwrap();
                r.max(g).max(b) > 150 && r.min(g).min(b) < 60
            });
            if saturated {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no picture of dev-b"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    b.stop().await;
    until("the card back after dev-b left", &screen, |s| {
        s.shown == 0 && s.participants == 0 && s.idle_text == "Waiting in room1"
    })
    .await;
    a.stop().await;
}

//! The seed's startPreview / stopPreview: the local camera (here the test pattern) runs to the
//! display sink without logging in or sending anything, and stops when asked.

use std::path::Path;
use std::time::Duration;

use roomcam::appliance::config::DeviceConfig;
use roomcam::appliance::gst_backend::{GstBackend, settings_from};
use roomcam::engine::{Credential, Engine, EngineOptions, EngineProfile};

#[tokio::test]
async fn preview_runs_without_a_room_and_stops() {
    let text = "[server]\nurl = \"ws://127.0.0.1:9/ws\"\n[identity]\napp_id = 1\nuser_id = \"p\"\ntoken = \"04x\"\n[room]\nid = \"r\"\n\
                [video]\nsource = \"test\"\nwidth = 320\nheight = 240\n[audio]\ncapture = \"test\"\nplayback = \"none\"\n[display]\nsink = \"none\"\n";
    let cfg = DeviceConfig::parse(text, Path::new("preview.toml")).unwrap();
    let (publish, play) = settings_from(&cfg).unwrap();
    let backend = GstBackend::new(publish, play).unwrap();
    let handle = backend.handle();
    let profile = EngineProfile {
        app_id: 1,
        user_id: "p".into(),
        user_name: "p".into(),
        credential: Credential::Token("04x".into()),
        scenario: 0,
    };
    let (engine, _events) = Engine::create(
        profile,
        EngineOptions::new("ws://127.0.0.1:9/ws"),
        Box::new(backend),
    )
    .await
    .unwrap();
    assert_eq!(handle.preview_frames(), None);
    engine.start_preview().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if handle.preview_frames().is_some_and(|n| n >= 30) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the preview shows nothing: {:?}",
            handle.preview_frames()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop_preview().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while handle.preview_frames().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the preview did not stop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // nothing was sent: the engine never logged in
    assert!(engine.status().room_state.is_none());
    engine.destroy().await;
}

//! The publish pipeline's `auto` goes through the device chooser on the real machine. This
//! machine has no camera and no sound card: `auto` publishes the test pattern and tone (with a
//! warning), explicit cameras fail at build with the chooser's error.

use std::time::Duration;

use roomcam::media::{
    AudioCapture, EncoderChoice, FrameKind, MediaError, PublishPipeline, PublishSettings,
    VideoSettings, VideoSource,
};

fn settings(source: VideoSource) -> PublishSettings {
    PublishSettings {
        video: VideoSettings {
            source,
            encoder: EncoderChoice::Auto,
            width: 320,
            height: 240,
            ..VideoSettings::default()
        },
        ..PublishSettings::default()
    }
}

fn no_camera_here() -> bool {
    let listing = roomcam::devices::discover();
    let c = roomcam::devices::choose(&listing, &roomcam::devices::Wanted::default());
    c.video.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_without_a_camera_publishes_the_test_pattern() {
    if !no_camera_here() {
        eprintln!("skipped: this machine has a camera");
        return;
    }
    let mut s = settings(VideoSource::Auto);
    s.audio.capture = AudioCapture::Auto;
    let (publisher, mut rx) = PublishPipeline::new(&s).expect("auto builds without a camera");
    assert_eq!(publisher.stats().encoder, "x264enc");
    assert_eq!(publisher.stats().video_source, "test pattern");
    publisher.start().expect("starts");
    let mut kinds = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(kinds.0 && kinds.1) {
        let frame = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("frames within 10 s")
            .expect("channel open");
        match frame.kind {
            FrameKind::Video => kinds.0 = true,
            FrameKind::Audio => kinds.1 = true,
        }
    }
    publisher.stop();
}

#[test]
fn explicit_cameras_the_machine_lacks_fail_with_the_choosers_error() {
    if !no_camera_here() {
        eprintln!("skipped: this machine has a camera");
        return;
    }
    let Err(err) = PublishPipeline::new(&settings(VideoSource::V4l2("/dev/video0".into()))) else {
        panic!("v4l2:/dev/video0 must fail here");
    };
    assert!(matches!(err, MediaError::Device(_)), "{err:?}");
    assert!(err.to_string().contains("no such V4L2 device"), "{err}");
    let Err(err) = PublishPipeline::new(&settings(VideoSource::Libcamera)) else {
        panic!("libcamera must fail here");
    };
    assert!(
        err.to_string().contains("video.source = \"libcamera\""),
        "{err}"
    );
}

//! Clear, typed errors: an encoder that is not installed names the element; bad setting strings
//! name the field.

use roomcam::media::{
    EncoderChoice, MediaError, PlayPipeline, PlaySettings, PublishPipeline, PublishSettings,
    VideoSettings, VideoSource,
};

fn settings(encoder: EncoderChoice) -> PublishSettings {
    PublishSettings {
        video: VideoSettings {
            source: VideoSource::Test,
            encoder,
            width: 320,
            height: 240,
            ..VideoSettings::default()
        },
        ..PublishSettings::default()
    }
}

#[test]
fn a_missing_hardware_encoder_is_a_typed_error_naming_it() {
    // This machine has no v4l2 M2M encoder (no v4l2h264enc element, or no device behind it).
    let Err(err) = PublishPipeline::new(&settings(EncoderChoice::V4l2h264enc)) else {
        panic!("v4l2h264enc should not work here");
    };
    match &err {
        MediaError::MissingElement { element, .. }
        | MediaError::UnusableElement { element, .. } => {
            assert_eq!(element, "v4l2h264enc")
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(err.to_string().contains("v4l2h264enc"), "{err}");
}

#[test]
fn auto_falls_back_to_x264() {
    let (publisher, _rx) = PublishPipeline::new(&settings(EncoderChoice::Auto)).expect("builds");
    assert_eq!(publisher.stats().encoder, "x264enc");
}

#[test]
fn invalid_sizes_are_refused_before_building() {
    let mut s = settings(EncoderChoice::X264enc);
    s.video.width = 333;
    let Err(err) = PublishPipeline::new(&s) else {
        panic!("odd width accepted")
    };
    assert!(
        matches!(
            err,
            MediaError::Setting {
                field: "video.width",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn pushing_to_a_player_that_is_not_started_is_an_error_not_a_hang() {
    let player = PlayPipeline::new(&PlaySettings {
        display: roomcam::media::DisplaySink::None,
        playback: roomcam::media::AudioPlayback::None,
        ..PlaySettings::default()
    })
    .expect("builds");
    let err = player
        .push_audio(vec![0xf8, 0xff, 0xfe], std::time::Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, MediaError::NotRunning(_)), "{err:?}");
}

#[test]
fn a_camera_the_machine_does_not_have_is_refused_at_build_naming_it() {
    // The device chooser (src/devices) checks an explicit camera against the machine's listing
    // before anything is built, so the error names the setting and lists the cameras there are.
    let mut s = settings(EncoderChoice::X264enc);
    s.video.source = VideoSource::V4l2("/dev/video-roomcam-missing".into());
    let Err(err) = PublishPipeline::new(&s) else {
        panic!("a missing camera must not build")
    };
    assert!(matches!(err, MediaError::Device(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("video.source = \"v4l2:/dev/video-roomcam-missing\": no such V4L2 device"),
        "{err}"
    );
}

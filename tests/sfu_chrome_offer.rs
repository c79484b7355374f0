//! A Chromium-style offer (BUNDLE, VP8/VP9/AV1/H.264 in several profiles, RTX, RED/ULPFEC,
//! Opus, TWCC and the usual header extensions) gets an answer that keeps H.264
//! packetization-mode 1 and Opus, with RTX and transport-cc; one without H.264 is refused.

use std::time::Instant;

use roomcam::protocol::{ErrorCode, ServerMessage, TrackMids};
use roomcam::room::{MediaCommand, SessionId, StreamKey};
use roomcam::sfu::{Sfu, SfuConfig, SfuOutput};

const CHROME_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 104 105 106 107 108 109 127 125 39 40 45 46 98 99 100 101 112 113 116 117 118\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Ab1C\r
a=ice-pwd:0123456789abcdefghijklmn\r
a=ice-options:trickle\r
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:3 urn:3gpp:video-orientation\r
a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/playout-delay\r
a=extmap:6 http://www.webrtc.org/experiments/rtp-hdrext/video-content-type\r
a=extmap:7 http://www.webrtc.org/experiments/rtp-hdrext/video-timing\r
a=extmap:8 http://www.webrtc.org/experiments/rtp-hdrext/color-space\r
a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=extmap:10 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r
a=extmap:11 urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id\r
a=sendonly\r
a=msid:stream video0\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:102 H264/90000\r
a=rtcp-fb:102 goog-remb\r
a=rtcp-fb:102 transport-cc\r
a=rtcp-fb:102 ccm fir\r
a=rtcp-fb:102 nack\r
a=rtcp-fb:102 nack pli\r
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r
a=rtpmap:103 rtx/90000\r
a=fmtp:103 apt=102\r
a=rtpmap:104 H264/90000\r
a=rtcp-fb:104 goog-remb\r
a=rtcp-fb:104 transport-cc\r
a=rtcp-fb:104 ccm fir\r
a=rtcp-fb:104 nack\r
a=rtcp-fb:104 nack pli\r
a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r
a=rtpmap:105 rtx/90000\r
a=fmtp:105 apt=104\r
a=rtpmap:106 H264/90000\r
a=rtcp-fb:106 goog-remb\r
a=rtcp-fb:106 transport-cc\r
a=rtcp-fb:106 ccm fir\r
a=rtcp-fb:106 nack\r
a=rtcp-fb:106 nack pli\r
a=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r
a=rtpmap:107 rtx/90000\r
a=fmtp:107 apt=106\r
a=rtpmap:108 H264/90000\r
a=rtcp-fb:108 goog-remb\r
a=rtcp-fb:108 transport-cc\r
a=rtcp-fb:108 ccm fir\r
a=rtcp-fb:108 nack\r
a=rtcp-fb:108 nack pli\r
a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r
a=rtpmap:109 rtx/90000\r
a=fmtp:109 apt=108\r
a=rtpmap:127 H264/90000\r
a=rtcp-fb:127 goog-remb\r
a=rtcp-fb:127 transport-cc\r
a=rtcp-fb:127 ccm fir\r
a=rtcp-fb:127 nack\r
a=rtcp-fb:127 nack pli\r
a=fmtp:127 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r
a=rtpmap:125 rtx/90000\r
a=fmtp:125 apt=127\r
a=rtpmap:39 H264/90000\r
a=rtcp-fb:39 goog-remb\r
a=rtcp-fb:39 transport-cc\r
a=rtcp-fb:39 ccm fir\r
a=rtcp-fb:39 nack\r
a=rtcp-fb:39 nack pli\r
a=fmtp:39 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=4d001f\r
a=rtpmap:40 rtx/90000\r
a=fmtp:40 apt=39\r
a=rtpmap:45 AV1/90000\r
a=rtcp-fb:45 goog-remb\r
a=rtcp-fb:45 transport-cc\r
a=rtcp-fb:45 ccm fir\r
a=rtcp-fb:45 nack\r
a=rtcp-fb:45 nack pli\r
a=fmtp:45 level-idx=5;profile=0;tier=0\r
a=rtpmap:46 rtx/90000\r
a=fmtp:46 apt=45\r
a=rtpmap:98 VP9/90000\r
a=rtcp-fb:98 goog-remb\r
a=rtcp-fb:98 transport-cc\r
a=rtcp-fb:98 ccm fir\r
a=rtcp-fb:98 nack\r
a=rtcp-fb:98 nack pli\r
a=fmtp:98 profile-id=0\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=rtpmap:100 VP9/90000\r
a=rtcp-fb:100 goog-remb\r
a=rtcp-fb:100 transport-cc\r
a=rtcp-fb:100 ccm fir\r
a=rtcp-fb:100 nack\r
a=rtcp-fb:100 nack pli\r
a=fmtp:100 profile-id=2\r
a=rtpmap:101 rtx/90000\r
a=fmtp:101 apt=100\r
a=rtpmap:112 H264/90000\r
a=rtcp-fb:112 goog-remb\r
a=rtcp-fb:112 transport-cc\r
a=rtcp-fb:112 ccm fir\r
a=rtcp-fb:112 nack\r
a=rtcp-fb:112 nack pli\r
a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r
a=rtpmap:113 rtx/90000\r
a=fmtp:113 apt=112\r
a=rtpmap:116 red/90000\r
a=rtpmap:117 rtx/90000\r
a=fmtp:117 apt=116\r
a=rtpmap:118 ulpfec/90000\r
a=ssrc-group:FID 1111111111 2222222222\r
a=ssrc:1111111111 cname:chromecname\r
a=ssrc:1111111111 msid:stream video0\r
a=ssrc:2222222222 cname:chromecname\r
a=ssrc:2222222222 msid:stream video0\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:Ab1C\r
a=ice-pwd:0123456789abcdefghijklmn\r
a=ice-options:trickle\r
a=fingerprint:sha-256 7B:8B:F0:65:5F:78:E2:51:3B:AC:6F:F3:3F:46:1B:35:DC:B8:5F:64:1A:24:C2:43:F0:A1:58:D0:A1:2C:19:08\r
a=setup:actpass\r
a=mid:1\r
a=extmap:14 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:2 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r
a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:9 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendonly\r
a=msid:stream audio0\r
a=rtcp-mux\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:3333333333 cname:chromecname\r
a=ssrc:3333333333 msid:stream audio0\r
";

fn offer(sdp: &str) -> Vec<SfuOutput> {
    let now = Instant::now();
    let mut sfu = Sfu::new(SfuConfig {
        candidates: vec!["192.0.2.10:5000".parse().unwrap()],
        ..SfuConfig::default()
    });
    let session = SessionId(1);
    let mids = TrackMids {
        video: Some("0".into()),
        audio: Some("1".into()),
    };
    let stream = StreamKey {
        app_id: 1,
        stream_id: "cam".into(),
    };
    sfu.handle_command(
        now,
        MediaCommand::Publish {
            session,
            stream,
            mids,
        },
    );
    sfu.handle_command(
        now,
        MediaCommand::Offer {
            session,
            sdp: sdp.to_string(),
        },
    );
    let mut out = Vec::new();
    loop {
        match sfu.poll_output() {
            SfuOutput::Timeout(_) => return out,
            o => out.push(o),
        }
    }
}

#[test]
fn chrome_offer_is_answered_with_h264_mode1_and_opus() {
    let out = offer(CHROME_OFFER);
    let answer = out
        .iter()
        .find_map(|o| match o {
            SfuOutput::Signal {
                message: ServerMessage::Answer { sdp },
                ..
            } => Some(sdp.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no answer: {out:?}"));
    let video = answer.split("m=audio").next().unwrap();
    assert!(video.contains("H264/90000"), "{answer}");
    assert!(
        !video.contains("VP8") && !video.contains("AV1") && !video.contains("VP9"),
        "{answer}"
    );
    assert!(!video.contains("packetization-mode=0"), "{answer}");
    assert!(!video.contains("profile-level-id=64001f"), "{answer}");
    assert!(video.contains("rtx/90000"), "no RTX: {answer}");
    assert!(video.contains("transport-cc"), "no TWCC: {answer}");
    assert!(video.contains("a=recvonly"), "{answer}");
    assert!(answer.contains("opus/48000/2"), "{answer}");
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("192.0.2.10 5000 typ host"), "{answer}");
    let candidates = out
        .iter()
        .filter(|o| {
            matches!(
                o,
                SfuOutput::Signal {
                    message: ServerMessage::Candidate { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(candidates, 1);
}

#[test]
fn chrome_offer_without_h264_is_refused() {
    // Drop every H.264 payload type from the m=video line's formats and its rtpmaps.
    let no_h264: String = CHROME_OFFER
        .lines()
        .filter(|l| !l.contains("H264"))
        .map(|l| format!("{l}\n"))
        .collect();
    let out = offer(&no_h264);
    let errors: Vec<ErrorCode> = out
        .iter()
        .filter_map(|o| match o {
            SfuOutput::Signal {
                message: ServerMessage::Error { code, .. },
                ..
            } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![ErrorCode::NoCommonCodec]);
}

//! Fuzz target `sdp`: SDP from the network, on both sides.
//!
//! - The SFU accepting an offer: the input is an offer from a logged-in session that publishes
//!   on mids `0`/`1`, through `Sfu::handle_command(Offer)` (our codec check, str0m's parser,
//!   `accept_offer` under the panic guard), then a trickled candidate made of its last line, then
//!   the session closes. One SFU lives for the whole run (it owns a DTLS certificate); each
//!   input gets a fresh session id.
//! - The device engine accepting an answer: a `MediaSession` offers to publish `s1` (and queues
//!   playing `s2`), and the input is the answer, with `$MID0`..`$MID3` replaced by the offer's
//!   mids in order so that mutated real answers keep matching.
//!
//! Invariants: no panic (a panic str0m's guard catches counts too: it would end a session);
//! the SFU answers an offer exactly once, with an `answer` the engine's parser reads, or with an
//! error; an offer our codec check refuses is answered `NoCommonCodec`; a refused answer is an
//! `Err`.
#![no_main]

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use roomcam::engine::{MediaSession, TrackOp};
use roomcam::protocol::{ErrorCode, ServerMessage, TrackMids};
use roomcam::room::{MediaCommand, SessionId, StreamKey};
use roomcam::sfu::{Sfu, SfuConfig, SfuOutput, check_offer};
use str0m::change::SdpAnswer;

struct Shared {
    sfu: Sfu,
    next: u64,
    now: Instant,
}

static SHARED: Mutex<Option<Shared>> = Mutex::new(None);

fn offer_side(sdp: &str) {
    let mut guard = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    let shared = guard.get_or_insert_with(|| Shared {
        sfu: Sfu::new(SfuConfig {
            candidates: vec![SocketAddr::from(([127, 0, 0, 1], 50000))],
            ..SfuConfig::default()
        }),
        next: 1,
        now: Instant::now(),
    });
    shared.next += 1;
    shared.now += Duration::from_millis(10);
    let session = SessionId(shared.next);
    let now = shared.now;
    let sfu = &mut shared.sfu;
    let stream = StreamKey {
        app_id: 1,
        stream_id: format!("s{}", session.0),
    };
    sfu.handle_command(
        now,
        MediaCommand::Publish {
            session,
            stream: stream.clone(),
            mids: TrackMids {
                video: Some("0".into()),
                audio: Some("1".into()),
            },
        },
    );
    sfu.handle_command(
        now,
        MediaCommand::Offer {
            session,
            sdp: sdp.to_string(),
        },
    );
    let mut replies = 0;
    let mut answered = false;
    loop {
        match sfu.poll_output() {
            SfuOutput::Timeout(_) => break,
            SfuOutput::Signal {
                session: s,
                message,
            } if s == session => match message {
                ServerMessage::Answer { sdp: answer } => {
                    replies += 1;
                    answered = true;
                    SdpAnswer::from_sdp_string(&answer)
                        .unwrap_or_else(|e| panic!("the engine cannot read our answer: {e}"));
                }
                ServerMessage::Error { code, .. } => {
                    replies += 1;
                    if check_offer(sdp).is_err() {
                        assert_eq!(code, ErrorCode::NoCommonCodec);
                    }
                }
                _ => {}
            },
            _ => {}
        }
    }
    assert_eq!(replies, 1, "an offer gets exactly one reply");
    assert!(!answered || check_offer(sdp).is_ok());
    if let Some(last) = sdp.lines().last() {
        sfu.handle_command(
            now,
            MediaCommand::Candidate {
                session,
                candidate: last.to_string(),
                sdp_mid: None,
            },
        );
    }
    sfu.handle_command(now, MediaCommand::Unpublish { session, stream });
    sfu.handle_command(now, MediaCommand::SessionClosed { session });
    sfu.handle_timeout(now);
    while !matches!(sfu.poll_output(), SfuOutput::Timeout(_)) {}
    assert_eq!(
        sfu.session_count(),
        0,
        "a closed session leaves nothing behind"
    );
}

fn answer_side(template: &str) {
    let now = Instant::now();
    let mut media = MediaSession::new(now, SocketAddr::from(([127, 0, 0, 1], 40000)));
    let (_, offer) = media
        .request(TrackOp::Publish("s1".into()))
        .expect("a first change makes an offer");
    assert!(media.request(TrackOp::Play("s2".into())).is_none());
    let mids: Vec<&str> = offer
        .lines()
        .filter_map(|l| l.strip_prefix("a=mid:"))
        .collect();
    let mut answer = template.to_string();
    for (i, mid) in mids.iter().enumerate() {
        answer = answer.replace(&format!("$MID{i}"), mid);
    }
    if let Ok(Some((ops, next_offer))) = media.accept_answer(now, &answer) {
        // The queued play is offered once the first answer is in.
        assert_eq!(ops.len(), 1);
        assert!(next_offer.starts_with("v=0"));
    }
    media.handle_timeout(now + Duration::from_millis(50));
    while media.poll_output().is_some() {}
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    offer_side(&text);
    answer_side(&text);
});

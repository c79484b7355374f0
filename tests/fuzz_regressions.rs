//! Regression tests for what fuzzing found (fuzz/, docs/fuzzing.md): each input crashed the code
//! before its fix.

use roomcam::protocol::{ParseError, parse_client_message};

/// fuzz target `protocol`: an error message cut at a fixed byte count panicked when the cut fell
/// inside a multi-byte character of the client's text (a remote crash of the frame parser).
#[test]
fn parse_errors_cut_client_text_on_character_boundaries() {
    for pad in 0..4 {
        let name = format!("{}{}", "a".repeat(pad), "é".repeat(150));
        // An unknown field: serde's message quotes the field name (cut to 200 bytes).
        let frame = format!(r#"{{"type":"heartbeat","{name}":1}}"#);
        match parse_client_message(&frame) {
            Err(ParseError::Malformed(m)) => {
                assert!(m.len() <= 200, "{} bytes", m.len());
                assert!(m.contains("unknown field"), "{m}");
            }
            other => panic!("{frame} gave {other:?}"),
        }
        // An unknown type: echoed back cut to 64 bytes.
        let frame = format!(r#"{{"type":"{name}"}}"#);
        match parse_client_message(&frame) {
            Err(ParseError::UnknownType(t)) => {
                assert!(t.len() <= 64 && name.starts_with(&t), "{t}");
                assert!(t.len() >= 60, "cut too short: {t}");
            }
            other => panic!("{frame} gave {other:?}"),
        }
    }
}

/// fuzz target `config`: `timeout_secs = 9223372036854775807` passes the server config's checks,
/// and the room service's next deadline (last heartbeat + session timeout) then overflowed
/// `Instant` and panicked.
#[test]
fn a_session_timeout_beyond_the_clock_has_no_deadline_instead_of_a_panic() {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use roomcam::room::{Now, RoomOutput, RoomService};
    use roomcam::server::config::ServerConfig;

    let text = r#"
listen = "127.0.0.1:0"
[session]
timeout_secs = 9223372036854775807
[[apps]]
app_id = 1
server_secret = "0123456789abcdef0123456789abcdef"
"#;
    let cfg = ServerConfig::parse(text, Path::new("huge.toml")).expect("the config validates");
    let mut svc = RoomService::new(cfg.room_config(), 1);
    let t0 = Instant::now();
    let now = Now {
        mono: t0,
        unix: 1_700_000_000,
    };
    let session = svc.connect(now);
    assert_eq!(svc.poll_timeout(), None, "no deadline the clock can express");
    // Silence for a day does not end the session: its timeout is (practically) never.
    svc.handle_timeout(Now {
        mono: t0 + Duration::from_secs(86_400),
        unix: now.unix + 86_400,
    });
    let closed = std::iter::from_fn(|| svc.poll_output())
        .any(|o| matches!(o, RoomOutput::Close { session: s } if s == session));
    assert!(!closed);
    assert_eq!(svc.session_count(), 1);
}

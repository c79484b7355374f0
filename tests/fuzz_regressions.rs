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

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
    assert_eq!(
        svc.poll_timeout(),
        None,
        "no deadline the clock can express"
    );
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

/// A token04 token whose plaintext is `plain`, AES-256-GCM with `secret` (what any generator
/// holding the secret can make, whatever the claims say).
fn token_of_plain(secret: &str, plain: &str) -> String {
    use aes_gcm::aead::{Aead, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    use base64::Engine as _;

    let key: &[u8; 32] = secret.as_bytes().try_into().expect("32-byte secret");
    let nonce = [9u8; 12];
    let ct = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
        .expect("GCM encrypts");
    let mut raw = Vec::new();
    raw.extend_from_slice(&0i64.to_be_bytes());
    raw.extend_from_slice(&12u16.to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&(ct.len() as u16).to_be_bytes());
    raw.extend_from_slice(&ct);
    raw.push(roomcam::auth::token04::MODE_GCM);
    format!(
        "04{}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// fuzz target `protocol` (`~L` lines: logins with tokens whose claims the fuzzer writes): a
/// validly signed token with `ctime` far in the past made `renewToken` overflow computing the
/// old token's lifetime (`expire - ctime`) and panic. The renewal now gets the longest lifetime.
#[test]
fn renewing_a_token_with_an_extreme_issue_time_mints_the_longest_lifetime() {
    use std::time::Instant;

    use roomcam::protocol::ServerMessage;
    use roomcam::room::{AppConfig, Now, RoomConfig, RoomOutput, RoomService};

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    let unix = 1_700_000_000;
    let mut svc = RoomService::new(
        RoomConfig {
            apps: vec![AppConfig {
                app_id: 1,
                server_secret: SECRET.into(),
                app_sign: None,
                allow_app_sign: false,
                revoked_users: Vec::new(),
            }],
            ..RoomConfig::default()
        },
        1,
    );
    let now = Now {
        mono: Instant::now(),
        unix,
    };
    let plain = format!(
        r#"{{"app_id":1,"user_id":"u1","nonce":1,"ctime":{},"expire":{},"payload":""}}"#,
        i64::MIN,
        unix + 3600
    );
    let token = token_of_plain(SECRET, &plain);
    let session = svc.connect(now);
    let login = format!(
        r#"{{"type":"login","version":1,"appId":1,"roomId":"r1","userId":"u1","token":"{token}"}}"#
    );
    svc.handle_text(now, session, &login);
    svc.handle_text(now, session, r#"{"type":"renewToken"}"#);
    let sent: Vec<ServerMessage> = std::iter::from_fn(|| svc.poll_output())
        .filter_map(|o| match o {
            RoomOutput::Send { message, .. } => Some((*message).clone()),
            _ => None,
        })
        .collect();
    assert!(
        sent.iter()
            .any(|m| matches!(m, ServerMessage::LoginResult { .. })),
        "{sent:?}"
    );
    let renewed = sent.iter().find_map(|m| match m {
        ServerMessage::TokenRenewed { token, expire } => Some((token.clone(), *expire)),
        _ => None,
    });
    let (token, expire) = renewed.unwrap_or_else(|| panic!("no tokenRenewed in {sent:?}"));
    assert!(token.is_some(), "the server mints the renewed token");
    assert_eq!(expire, unix + 30 * 24 * 3600);
}

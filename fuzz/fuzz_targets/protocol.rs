//! Fuzz target `protocol`: signalling frames into both ends of the protocol.
//!
//! 1. The whole input, as one text frame, goes to `parse_client_message` (the room service's
//!    parser) and to the `ServerMessage` parser the device engine uses. A message that parses
//!    must serialize and parse back to the same value.
//! 2. The input, split into lines, drives the sans-IO cores the way the network would:
//!    - a `RoomService` with two sessions already logged into room `r1` (users `u1`, `u2`, real
//!      token04 tokens) and a third that has only said hello. A line goes to session 1, or to
//!      session 2/3 with a `2>`/`3>` prefix. `~t` lets 20 s pass (timeouts, token warnings),
//!      `~x` closes session 1, `~r` reloads the config with `u2` revoked. `~L` + JSON logs
//!      session 3 in with a token whose plaintext claims are that JSON (encrypted here with the
//!      app's secret, so the claims get past authentication), `~R` + JSON renews session 1's
//!      token with such a token.
//!    - an `EngineCore` (the device side) that has connected and waits for `hello`: every line
//!      without a prefix is also a frame from the server to it.
//!
//! Invariants: no panic; every frame the room service sends parses back (as the engine would
//! read it) to the same message; every frame the engine sends is one the room service parses,
//! to the same message.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use roomcam::auth::token04::{self, MintRequest, Privileges};
use roomcam::engine::{Command, CoreOutput, Credential, EngineConfig, EngineCore, EngineProfile};
use roomcam::protocol::{ClientMessage, ServerMessage, parse_client_message};
use roomcam::room::{AppConfig, Now, RoomConfig, RoomOutput, RoomService, SessionId};

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const SIGN: &str = "39011cb0000000000000000000000000000000000000000000000000000000ff";
const UNIX: i64 = 1_700_000_000;

fn token(user: &str) -> String {
    let req = MintRequest {
        app_id: 1,
        user_id: user.into(),
        room_id: Some("r1".into()),
        privileges: Privileges::default(),
        stream_ids: Vec::new(),
        now_unix: UNIX,
        ttl_secs: 90,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    token04::mint(&req, SECRET, &mut rng).expect("the fuzzing token mints")
}

/// A GCM token04 token whose plaintext is `plain` (the claims JSON), keyed by the app's secret.
fn token_of_plain(plain: &str) -> String {
    let key: &[u8; 32] = SECRET.as_bytes().try_into().expect("32-byte secret");
    let nonce = [9u8; 12];
    let ct = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
        .expect("GCM encrypts any plaintext");
    let mut raw = Vec::new();
    raw.extend_from_slice(&UNIX.to_be_bytes());
    raw.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
    raw.extend_from_slice(&nonce);
    raw.extend_from_slice(&(ct.len().min(u16::MAX as usize) as u16).to_be_bytes());
    raw.extend_from_slice(&ct);
    raw.push(token04::MODE_GCM);
    format!("04{}", B64.encode(raw))
}

fn tokens() -> &'static (String, String, String) {
    static T: OnceLock<(String, String, String)> = OnceLock::new();
    T.get_or_init(|| (token("u1"), token("u2"), token("dev1")))
}

fn room_config(revoked: &[&str]) -> RoomConfig {
    RoomConfig {
        apps: vec![AppConfig {
            app_id: 1,
            server_secret: SECRET.into(),
            app_sign: Some(SIGN.into()),
            allow_app_sign: true,
            revoked_users: revoked.iter().map(|s| s.to_string()).collect(),
        }],
        allow_legacy_cbc_tokens: true,
        ..RoomConfig::default()
    }
}

/// Both parsers on one frame, with round trips.
fn round_trips(text: &str) {
    if let Ok(m) = parse_client_message(text) {
        let back = serde_json::to_string(&m).expect("client messages serialize");
        assert_eq!(parse_client_message(&back).as_ref(), Ok(&m), "{back}");
    }
    if let Ok(m) = serde_json::from_str::<ServerMessage>(text) {
        let back = serde_json::to_string(&m).expect("server messages serialize");
        let again: ServerMessage = serde_json::from_str(&back).expect("server message re-parses");
        assert_eq!(again, m, "{back}");
    }
}

struct Harness {
    room: RoomService,
    sessions: [SessionId; 3],
    engine: EngineCore,
    t0: Instant,
    now: Now,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        let now = Now {
            mono: t0,
            unix: UNIX,
        };
        let (t1, t2, t3) = tokens();
        let mut room = RoomService::new(room_config(&[]), 7);
        let s1 = room.connect(now);
        let s2 = room.connect(now);
        let s3 = room.connect(now);
        for (s, user, t) in [(s1, "u1", t1), (s2, "u2", t2)] {
            let login = format!(
                r#"{{"type":"login","version":1,"appId":1,"roomId":"r1","userId":"{user}","token":"{t}","userUpdates":true}}"#
            );
            room.handle_text(now, s, &login);
        }
        let mut h = Harness {
            room,
            sessions: [s1, s2, s3],
            engine: EngineCore::new(
                t0,
                EngineProfile {
                    app_id: 1,
                    user_id: "dev1".into(),
                    user_name: "Device".into(),
                    credential: Credential::Token(t3.clone()),
                    scenario: 0,
                },
                EngineConfig::default(),
                SocketAddr::from(([127, 0, 0, 1], 40000)),
                5,
            ),
            t0,
            now,
        };
        let logged_in = h.drain_room();
        assert_eq!(logged_in, 2, "the harness's own logins must succeed");
        h.engine.command(
            t0,
            Command::LoginRoom {
                room_id: "r1".into(),
                user_updates: true,
                token: None,
            },
        );
        h.engine.handle_connected(t0);
        h.drain_engine();
        h
    }

    /// Drains the room service's outputs, checking each message; returns the login results.
    fn drain_room(&mut self) -> usize {
        let mut logins = 0;
        while let Some(o) = self.room.poll_output() {
            if let RoomOutput::Send { message, .. } = o {
                let text = serde_json::to_string(&*message).expect("server messages serialize");
                let back: ServerMessage = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("the engine cannot read {text}: {e}"));
                assert_eq!(&back, &*message, "{text}");
                if matches!(back, ServerMessage::LoginResult { .. }) {
                    logins += 1;
                }
            }
        }
        logins
    }

    fn drain_engine(&mut self) {
        while let Some(o) = self.engine.poll_output() {
            if let CoreOutput::Send(m) = o {
                let text = serde_json::to_string(&m).expect("client messages serialize");
                let back: ClientMessage = parse_client_message(&text)
                    .unwrap_or_else(|e| panic!("the room service cannot read {text}: {e}"));
                assert_eq!(back, m, "{text}");
            }
        }
    }

    fn tick(&mut self, by: Duration) {
        self.now = Now {
            mono: self.now.mono + by,
            unix: UNIX + (self.now.mono + by - self.t0).as_secs() as i64,
        };
    }

    fn line(&mut self, line: &str) {
        self.tick(Duration::from_millis(20));
        let now = self.now;
        match line {
            "~t" => {
                self.tick(Duration::from_secs(20));
                self.room.handle_timeout(self.now);
                self.engine.handle_timeout(self.now.mono);
            }
            "~x" => self.room.disconnect(now, self.sessions[0]),
            "~r" => self.room.reload(room_config(&["u2"])),
            _ => {
                if let Some(plain) = line.strip_prefix("~L") {
                    let login = serde_json::json!({
                        "type": "login", "version": 1, "appId": 1, "roomId": "r1",
                        "userId": "u3", "token": token_of_plain(plain),
                    });
                    self.room
                        .handle_text(now, self.sessions[2], &login.to_string());
                } else if let Some(plain) = line.strip_prefix("~R") {
                    let renew = serde_json::json!({
                        "type": "renewToken", "token": token_of_plain(plain),
                    });
                    self.room
                        .handle_text(now, self.sessions[0], &renew.to_string());
                } else if let Some(rest) = line.strip_prefix("2>") {
                    self.room.handle_text(now, self.sessions[1], rest);
                } else if let Some(rest) = line.strip_prefix("3>") {
                    self.room.handle_text(now, self.sessions[2], rest);
                } else {
                    self.room.handle_text(now, self.sessions[0], line);
                    self.engine.handle_text(now.mono, line);
                }
            }
        }
        self.drain_room();
        self.drain_engine();
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    round_trips(&text);
    let mut h = Harness::new();
    for line in text.split('\n').take(64) {
        h.line(line.strip_suffix('\r').unwrap_or(line));
    }
});

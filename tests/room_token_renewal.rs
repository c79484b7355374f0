//! Token lifetime on simulated time (the sans-IO room core, no sockets): token-will-expire,
//! renewal by the server or with a new token, and the kick when a token runs out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use roomcam::auth::{self, MintRequest, Privileges};
use roomcam::protocol::{ErrorCode, ServerMessage};
use roomcam::room::{AppConfig, Now, RoomConfig, RoomOutput, RoomService, SessionId};
use serde_json::json;

const SECRET: &str = "0123456789abcdef0123456789abcdef";
const T0: i64 = 1_800_000_000;

struct Sim {
    room: RoomService,
    start: Instant,
    secs: i64,
}

impl Sim {
    fn new() -> Sim {
        let cfg = RoomConfig {
            apps: vec![AppConfig {
                app_id: 1,
                server_secret: SECRET.into(),
                app_sign: None,
                allow_app_sign: false,
                revoked_users: vec![],
            }],
            token_warning_secs: 60,
            clock_skew_secs: 30,
            session_timeout: Duration::from_secs(1_000_000),
            ..RoomConfig::default()
        };
        Sim {
            room: RoomService::new(cfg, 1),
            start: Instant::now(),
            secs: 0,
        }
    }
    fn now(&self) -> Now {
        Now {
            mono: self.start + Duration::from_secs(self.secs as u64),
            unix: T0 + self.secs,
        }
    }
    fn advance(&mut self, secs: i64) {
        for _ in 0..secs {
            self.secs += 1;
            let n = self.now();
            self.room.handle_timeout(n);
        }
    }
    fn send(&mut self, s: SessionId, v: serde_json::Value) {
        let n = self.now();
        self.room.handle_text(n, s, &v.to_string());
    }
    fn drain(&mut self, s: SessionId) -> Vec<Arc<ServerMessage>> {
        let mut v = Vec::new();
        while let Some(o) = self.room.poll_output() {
            if let RoomOutput::Send { session, message } = o
                && session == s
            {
                v.push(message);
            }
        }
        v
    }
}

fn mint(ttl: i64, now: i64) -> String {
    let req = MintRequest {
        app_id: 1,
        user_id: "pi".into(),
        room_id: Some("r".into()),
        privileges: Privileges {
            login: true,
            publish: true,
            play: false,
        },
        stream_ids: vec![],
        now_unix: now,
        ttl_secs: ttl,
    };
    auth::token04::mint(&req, SECRET, &mut rand::thread_rng()).unwrap()
}

fn login(sim: &mut Sim, ttl: i64) -> SessionId {
    let s = sim.room.connect(sim.now());
    let t = mint(ttl, T0 + sim.secs);
    sim.send(
        s,
        json!({"type":"login","version":1,"appId":1,"roomId":"r","userId":"pi","token":t}),
    );
    let out = sim.drain(s);
    assert!(
        out.iter()
            .any(|m| matches!(**m, ServerMessage::LoginResult { .. })),
        "{out:?}"
    );
    s
}

#[test]
fn warning_then_kick_when_not_renewed() {
    let mut sim = Sim::new();
    let s = login(&mut sim, 300);
    sim.advance(200);
    assert!(sim.drain(s).is_empty(), "nothing before the warning window");
    sim.advance(45); // 55 s left
    let out = sim.drain(s);
    assert!(
        matches!(*out[0], ServerMessage::TokenWillExpire { remaining_secs } if remaining_secs <= 60 && remaining_secs > 50),
        "{out:?}"
    );
    sim.advance(55 + 30); // at expiry + skew: still in
    assert!(sim.drain(s).is_empty());
    sim.advance(1);
    let out = sim.drain(s);
    assert!(
        matches!(
            *out[0],
            ServerMessage::Kicked {
                code: ErrorCode::KickedTokenExpired,
                ..
            }
        ),
        "{out:?}"
    );
    assert_eq!(sim.room.member_count(), 0);
}

#[test]
fn server_minted_renewal_keeps_the_session_for_months() {
    let mut sim = Sim::new();
    let s = login(&mut sim, 3600);
    // a device renews whenever told, for 90 days of simulated time (in 1-hour steps)
    let mut renewals = 0;
    for _ in 0..(90 * 24) {
        sim.advance(3600);
        for m in sim.drain(s) {
            match &*m {
                ServerMessage::TokenWillExpire { .. } => {
                    sim.send(s, json!({"type":"renewToken"}));
                    let out = sim.drain(s);
                    let ServerMessage::TokenRenewed {
                        token: Some(t),
                        expire,
                    } = &*out[0]
                    else {
                        panic!("{out:?}")
                    };
                    // same privileges, same user and room, fresh expiry
                    let c = auth::token04::decode(t, SECRET, T0 + sim.secs, Default::default())
                        .unwrap();
                    assert_eq!(c.expire, *expire);
                    assert_eq!(c.user_id, "pi");
                    assert_eq!(c.room_id.as_deref(), Some("r"));
                    assert!(c.privileges.publish && !c.privileges.play);
                    assert_eq!(c.expire - (T0 + sim.secs), 3600);
                    renewals += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert!(renewals > 1000, "renewed {renewals} times");
    assert_eq!(sim.room.member_count(), 1);
}

#[test]
fn renewal_with_a_new_token_is_checked() {
    let mut sim = Sim::new();
    let s = login(&mut sim, 600);
    // a token for another user is refused with its own code
    let req = MintRequest {
        app_id: 1,
        user_id: "other".into(),
        room_id: None,
        privileges: Privileges::default(),
        stream_ids: vec![],
        now_unix: T0,
        ttl_secs: 600,
    };
    let other = auth::token04::mint(&req, SECRET, &mut rand::thread_rng()).unwrap();
    sim.send(s, json!({"type":"renewToken","token":other}));
    let out = sim.drain(s);
    assert!(
        matches!(
            *out[0],
            ServerMessage::Error {
                code: ErrorCode::TokenUserMismatch,
                ..
            }
        ),
        "{out:?}"
    );
    sim.send(s, json!({"type":"renewToken","token":"04garbage"}));
    let out = sim.drain(s);
    assert!(
        matches!(
            *out[0],
            ServerMessage::Error {
                code: ErrorCode::TokenInvalid,
                ..
            }
        ),
        "{out:?}"
    );
    // a good one replaces the session's token: no kick at the old expiry
    let fresh = mint(7200, T0 + sim.secs);
    sim.send(s, json!({"type":"renewToken","token":fresh}));
    let out = sim.drain(s);
    assert!(
        matches!(*out[0], ServerMessage::TokenRenewed { token: None, expire } if expire == T0 + 7200),
        "{out:?}"
    );
    sim.advance(700);
    assert_eq!(sim.room.member_count(), 1);
}
